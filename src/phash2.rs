//! `erlang:phash2/1,2`, bit for bit (issue 3). Skeleton.
