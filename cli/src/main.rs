//! The `vakt` binary: parses the command line and runs one command.

mod commands;
mod ha;
mod inventory;
mod lab;
mod plan;
mod progress;
mod render;
mod services;
mod transport;

use std::process::ExitCode;

fn main() -> ExitCode {
    commands::run()
}
