//! The `codegenie` command-line tool.

fn main() -> std::process::ExitCode {
    codegenie::cli::main()
}
