//! The release stages of the migration (docs/design/migration.md), seen from a server.
//!
//! A C-node can serve every name at once, so per-node names exist at every release (they
//! cost nothing and make callers of any release safe). What the release decides is the
//! singleton `rexi_server`: present at 0, 1 and 2, retired at 3.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Release(u8);

impl Release {
    pub fn new(n: u8) -> Option<Release> {
        (n <= 3).then_some(Release(n))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Whether the singleton `rexi_server` is registered at this release.
    pub fn has_singleton(self) -> bool {
        self.0 < 3
    }
}

impl Default for Release {
    fn default() -> Self {
        Release(1)
    }
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
