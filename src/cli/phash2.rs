//! `rexi-node phash2` (issue 3). Skeleton.
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn main(_a: Args) -> ExitCode {
    ExitCode::FAILURE
}
