//! Holds the architecture's two structural invariants (docs/ARCHITECTURE.md):
//!
//! * **Layers point down.** A module may use modules of its own layer or of lower ones,
//!   never of a higher one: `etf`, `phash2`, `fast_hash` <- `term` <- `process` <- `net` <- `rexi` <-
//!   `handlers`, `client`, `migrate`, `metrics` <- the CLI (`src/cli`, `src/main.rs`).
//! * **No circles.** No chain of imports between the files of `src/` leads back to where it
//!   started (a file's own `#[cfg(test)]` module is not part of it).
//!
//! The check reads the sources, not the compiler's output: every `crate::`, `super::`,
//! `self::` and `rexi_node::` path (in `use` items, grouped or not, and inline) is resolved
//! to the file that defines it, following `pub use` re-exports, so `use super::Stats` in a
//! child counts as an import of the file that really holds `Stats`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules of the library, lowest layer first. Modules on one line share a layer.
const LAYERS: &[&[&str]] = &[
    &["etf", "phash2", "log_limit", "fast_hash"],
    &["term"],
    &["process"],
    &["net"],
    &["rexi"],
    &["handlers", "client", "migrate", "metrics"],
    &["cli", "main", "lib"],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// A source file as a module path: `["rexi", "server"]` for src/rexi/server.rs; the CLI
/// lives in the binary crate (`src/main.rs` declares `mod cli`), so its paths start at `cli`.
#[derive(Debug)]
struct File {
    path: PathBuf,
    module: Vec<String>,
    /// `crate::` means the binary crate (src/main.rs) rather than the library.
    in_bin: bool,
    code: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file's text without comments, string literals and its `#[cfg(test)]` modules.
fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    // A `#[cfg(test)]` item ends the file's own code by convention (tests sit at the end);
    // drop from the attribute that opens a test module.
    if let Some(at) = out.find("#[cfg(test)]\nmod ") {
        out.truncate(at);
    }
    out
}

fn load() -> Vec<File> {
    let src = src_dir();
    let mut paths = Vec::new();
    collect(&src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|s| s == "mod") {
                module.pop();
            }
            let in_bin = module.first().is_some_and(|s| s == "cli" || s == "main");
            if module == ["lib"] || module == ["main"] {
                module.clear();
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            File {
                path: rel.to_path_buf(),
                module,
                in_bin,
                code: strip(&text),
            }
        })
        .collect()
}

/// Which file defines each module path, per crate (`false` = library, `true` = binary).
type Modules = BTreeMap<(bool, Vec<String>), usize>;

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands `use` trees: `a::{b, c::{d, e as f}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&inner[start..], &base, out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(join(prefix, path));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// Every path the file names: the leaves of its `use` items and inline `crate::`/`super::`/
/// `rexi_node::` paths.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = at == 0 || !is_ident(rest[..at].chars().next_back().unwrap_or(' '));
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if before_ok {
            expand_use(&after[..end], "", &mut out);
        }
        rest = &after[end.min(after.len())..];
    }
    for root in ["crate::", "super::", "rexi_node::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(root) {
            let at = from + i;
            from = at + root.len();
            if at > 0 && is_ident(code[..at].chars().next_back().unwrap_or(' ')) {
                continue;
            }
            let tail: String = code[at..]
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            out.push(tail.trim_end_matches(':').to_string());
        }
    }
    out
}

/// `pub use` re-exports per module file: item name -> the path it stands for.
fn reexports(files: &[File]) -> BTreeMap<usize, BTreeMap<String, String>> {
    let mut all = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let mut map = BTreeMap::new();
        let mut rest = f.code.as_str();
        while let Some(at) = rest.find("pub use ") {
            let after = &rest[at + 8..];
            let end = after.find(';').unwrap_or(after.len());
            let mut leaves = Vec::new();
            expand_use(&after[..end], "", &mut leaves);
            for leaf in leaves {
                if let Some(name) = leaf.rsplit("::").next() {
                    map.insert(name.to_string(), leaf.clone());
                }
            }
            rest = &after[end..];
        }
        all.insert(i, map);
    }
    all
}

struct Resolver<'a> {
    files: &'a [File],
    modules: Modules,
    reexports: BTreeMap<usize, BTreeMap<String, String>>,
}

impl Resolver<'_> {
    /// The file a path (as written in `from`) leads to, or None for external crates/std.
    fn resolve(&self, from: usize, path: &str, hops: u32) -> Option<usize> {
        let f = &self.files[from];
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let (mut bin, mut base, rest): (bool, Vec<String>, &[&str]) = match segs.first()? {
            &"crate" => (f.in_bin, vec![], &segs[1..]),
            &"rexi_node" => (false, vec![], &segs[1..]),
            &"self" => (f.in_bin, f.module.clone(), &segs[1..]),
            &"super" => {
                let mut m = f.module.clone();
                let mut k = 0;
                while segs.get(k) == Some(&"super") {
                    m.pop();
                    k += 1;
                }
                (f.in_bin, m, &segs[k..])
            }
            // A relative `use child::X` inside a module file.
            first => {
                let mut m = f.module.clone();
                m.push(first.to_string());
                if self.modules.contains_key(&(f.in_bin, m)) {
                    (f.in_bin, f.module.clone(), &segs[..])
                } else {
                    return None;
                }
            }
        };
        if bin && base.is_empty() && rest.first().is_some_and(|s| *s != "cli") {
            // The binary crate's root only holds `cli`; anything else is unresolvable.
            bin = true;
        }
        let mut file = *self.modules.get(&(bin, base.clone()))?;
        for (k, seg) in rest.iter().enumerate() {
            let mut next = base.clone();
            next.push(seg.to_string());
            if let Some(&g) = self.modules.get(&(bin, next.clone())) {
                base = next;
                file = g;
                continue;
            }
            // Not a module: an item of `file`, maybe re-exported from elsewhere.
            if hops < 8 {
                if let Some(target) = self.reexports.get(&file).and_then(|m| m.get(*seg)) {
                    let mut p = target.clone();
                    for s in &rest[k + 1..] {
                        p = format!("{p}::{s}");
                    }
                    if let Some(g) = self.resolve(file, &p, hops + 1) {
                        return Some(g);
                    }
                }
            }
            break;
        }
        let _ = &mut bin;
        Some(file)
    }
}

fn graph() -> (Vec<File>, BTreeMap<usize, BTreeSet<usize>>) {
    let files = load();
    let mut modules = Modules::new();
    for (i, f) in files.iter().enumerate() {
        modules.insert((f.in_bin, f.module.clone()), i);
    }
    let reexports = reexports(&files);
    let r = Resolver {
        files: &files,
        modules,
        reexports,
    };
    let mut edges: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        let set = edges.entry(i).or_default();
        for p in paths_in(&f.code) {
            if let Some(j) = r.resolve(i, &p, 0) {
                // A module file naming its own children (`mod x; pub use x::Y;`) or a
                // child naming its parent's re-export resolves to the real file above;
                // an edge to an ancestor module file itself is only its declarations.
                let ancestor = files[j].module.len() < f.module.len()
                    && f.module.starts_with(&files[j].module)
                    && files[j].in_bin == f.in_bin;
                if j != i && !ancestor {
                    set.insert(j);
                }
            }
        }
    }
    drop(r);
    (files, edges)
}

fn top(f: &File) -> String {
    if f.in_bin {
        return "cli".into();
    }
    f.module
        .first()
        .cloned()
        .unwrap_or_else(|| "lib".to_string())
}

#[test]
fn every_top_level_module_has_a_layer() {
    let (files, _) = graph();
    let missing: BTreeSet<String> = files
        .iter()
        .map(top)
        .filter(|t| layer_of(t).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "modules with no layer in tests/layering.rs and docs/ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn a_lower_layer_never_imports_a_higher_one() {
    let (files, edges) = graph();
    let mut bad = Vec::new();
    for (&i, outs) in &edges {
        let (Some(li), ti) = (layer_of(&top(&files[i])), top(&files[i])) else {
            continue;
        };
        for &j in outs {
            let tj = top(&files[j]);
            if let Some(lj) = layer_of(&tj) {
                if lj > li {
                    bad.push(format!(
                        "{} ({ti}) imports {} ({tj})",
                        files[i].path.display(),
                        files[j].path.display()
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "upward imports:\n  {}", bad.join("\n  "));
}

#[test]
fn no_import_circles_in_src() {
    let (files, edges) = graph();
    // Tarjan's strongly connected components, iteratively.
    let n = files.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut circles = Vec::new();
    let succ: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            edges
                .get(&i)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default()
        })
        .collect();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut k)) = work.last_mut() {
            if *k == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on[v] = true;
            }
            if let Some(&w) = succ[v].get(*k) {
                *k += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(u, _)) = work.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = stack.pop().expect("scc stack");
                    on[w] = false;
                    comp.push(files[w].path.display().to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    circles.push(comp.join(" <-> "));
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n  {}",
        circles.join("\n  ")
    );
}

/// The checker itself: it must see the imports it is meant to police.
#[test]
fn the_checker_sees_known_imports() {
    let (files, edges) = graph();
    let find = |p: &str| {
        files
            .iter()
            .position(|f| f.path == Path::new(p))
            .unwrap_or_else(|| panic!("{p} not found"))
    };
    let handlers = find("handlers/mod.rs");
    let phash2 = find("phash2.rs");
    assert!(
        edges[&handlers].contains(&phash2),
        "handlers -> phash2 not seen"
    );
    let run = find("cli/run.rs");
    assert!(
        edges[&run].iter().any(|&j| !files[j].in_bin),
        "cli/run.rs -> the library (rexi_node::) not seen"
    );
    assert!(
        edges.values().map(|s| s.len()).sum::<usize>() > 50,
        "suspiciously few imports found"
    );
    let mut v = Vec::new();
    expand_use("crate::a::{b, c::{d, e as f}}", "", &mut v);
    assert_eq!(v, ["crate::a::b", "crate::a::c::d", "crate::a::c::e"]);
}
