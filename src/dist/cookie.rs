//! The magic cookie: where it comes from, and how it is kept out of logs.
//!
//! Like `erl`, the default is `$HOME/.erlang.cookie`, created with 20 random upper-case
//! letters and mode 0400 when missing. The cookie is wrapped in [`Cookie`], whose `Debug`
//! and `Display` never show the value, so it cannot leak through a log line by accident.

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
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let value = text.trim_end_matches(['\n', '\r', ' ']).to_string();
            if value.is_empty() {
                return Err(format!(
                    "cookie file {} is empty; put a cookie in it or pass --cookie",
                    path.display()
                ));
            }
            Ok(Cookie(value))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(format!("cannot read cookie file {}: {e}", path.display())),
    }
}

fn create(path: &Path) -> Result<Cookie, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let value = random_letters(20);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(|e| format!("cannot create cookie file {}: {e}", path.display()))?;
    f.write_all(value.as_bytes())
        .map_err(|e| format!("cannot write cookie file {}: {e}", path.display()))?;
    Ok(Cookie(value))
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
}
