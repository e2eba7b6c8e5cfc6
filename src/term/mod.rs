//! Erlang term text syntax <-> `eetf::Term` (issue 3). Skeleton.
