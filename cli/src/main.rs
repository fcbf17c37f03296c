//! The `vakt` binary: parses the command line and runs one command.

mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    commands::run()
}
