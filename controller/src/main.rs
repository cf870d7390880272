use clap::Parser;

fn main() -> std::process::ExitCode {
    cairn::cli::run(cairn::cli::Cli::parse())
}
