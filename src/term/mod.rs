//! Erlang term text syntax <-> `eetf::Term` (issue 3). Skeleton.

/// Placeholder printer until the term syntax lands.
pub fn print(t: &eetf::Term) -> String {
    format!("{t}")
}
