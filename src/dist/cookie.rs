//! The magic cookie: where it comes from, and how it is kept out of logs.
//!
//! Like `erl`, the default is `$HOME/.erlang.cookie`, created with 20 random upper-case
//! letters and mode 0400 when missing, and refused when group or others may read it (a
//! cookie others can read is no secret). The file is created atomically: written under a
//! temporary name, then linked into place, so a second daemon starting at the same moment
//! either wins or reads the winner's complete file, never an empty or partial one. The
//! cookie is wrapped in [`Cookie`], whose `Debug` and `Display` never show the value, so
//! it cannot leak through a log line by accident.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A distribution cookie. Prints as `<cookie>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String);

impl Cookie {
    pub fn new(value: impl Into<String>) -> Cookie {
        Cookie(value.into())
    }

    /// The secret itself, for the handshake only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<cookie>")
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<cookie>")
    }
}

/// `$HOME/.erlang.cookie`, as `erl` uses.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".erlang.cookie"))
}

/// Reads the cookie from `path`, creating the file (mode 0400, 20 random letters) when it
/// does not exist, exactly like `erl` does on first start.
pub fn load_or_create(path: &Path) -> Result<Cookie, String> {
    match read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        r => r.map_err(|e| format!("cannot read cookie file {}: {e}", path.display()))?,
    }
}

/// The cookie in `path`: `Ok(Err(message))` when the file is there but unusable.
fn read(path: &Path) -> std::io::Result<Result<Cookie, String>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::open(path)?;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        return Ok(Err(format!(
            "cookie file {} must be accessible by its owner only (its mode is {:03o}; erl \
             refuses it too): run chmod 400 {}",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let value = text.trim_end_matches(['\n', '\r', ' ']).to_string();
    if value.is_empty() {
        return Ok(Err(format!(
            "cookie file {} is empty; put a cookie in it or pass --cookie-file",
            path.display()
        )));
    }
    Ok(Ok(Cookie(value)))
}

/// Writes a new cookie under a temporary name and links it into place. `link` fails when
/// the name exists (unlike `rename`, which would replace a cookie another process just
/// created and maybe already uses): then that process won, and its cookie is read.
fn create(path: &Path) -> Result<Cookie, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let value = random_letters(20);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".erlang.cookie".into());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        random_letters(8)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot create cookie file {}: {e}", path.display()));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Cookie(value)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(path).map_err(|e| format!("cannot read cookie file {}: {e}", path.display()))?
        }
        Err(e) => Err(format!("cannot create cookie file {}: {e}", path.display())),
    }
}

fn random_letters(n: usize) -> String {
    // Seeded from the clock, the pid and the address of a stack value: a cookie only needs
    // to be unguessable by a casual peer, as erl's own (which uses the clock) is.
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(n);
    let state = RandomState::new();
    let mut i = 0u64;
    while out.len() < n {
        let mut h = state.build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        let v = h.finish();
        out.push((b'A' + (v % 26) as u8) as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let c = Cookie::new("SECRET");
        assert_eq!(format!("{c} {c:?}"), "<cookie> <cookie>");
    }

    #[test]
    fn created_like_erl() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rexi-cookie-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(".erlang.cookie");
        let _ = std::fs::remove_file(&path);
        let c = load_or_create(&path).expect("create");
        assert_eq!(c.expose().len(), 20);
        assert!(c.expose().chars().all(|ch| ch.is_ascii_uppercase()));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        assert_eq!(load_or_create(&path).expect("read"), c);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn readable_by_others_is_refused_like_erl() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rexi-cookie-mode-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("cookie");
        std::fs::write(&path, "SECRET").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load_or_create(&path).expect_err("0644 must be refused");
        assert!(
            e.contains("chmod 400") && e.contains(&path.display().to_string()),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(load_or_create(&path).expect("0600").expose(), "SECRET");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn concurrent_first_starts_agree() {
        let dir = std::env::temp_dir().join(format!("rexi-cookie-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(".erlang.cookie");
        let got: Vec<Result<Cookie, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..80).map(|_| s.spawn(|| load_or_create(&path))).collect();
            hs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let first = got[0].clone().expect("first");
        for g in &got {
            assert_eq!(g.as_ref().map(|c| c.expose()), Ok(first.expose()));
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
