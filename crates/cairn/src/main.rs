//! `cairn`: the command line, and the composition root of every crate.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The job supervisor shim runs before anything else, so that the job's
    // arguments are not parsed as cairn's and nothing is logged into its output.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__supervise") {
        return cairn_runtime_embedded::process::supervise_from_args(&args[2..]);
    }
    cli::run(cli::Cli::parse())
}
