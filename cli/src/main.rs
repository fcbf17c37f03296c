//! The `vakt` binary: parses the command line and runs one command.

mod acme;
mod audit;
mod audit_report;
mod backup;
mod certs;
mod commands;
mod firewall;
mod ha;
mod history;
mod hooks;
mod inventory;
mod lab;
mod lock;
mod logs;
mod plan;
mod probe;
mod progress;
mod releases;
mod render;
mod rollout;
mod rotation;
mod selection;
mod services;
mod target;
mod topology;
mod transport;
mod vagrant;
mod verify;

use std::process::ExitCode;

fn main() -> ExitCode {
    commands::run()
}
