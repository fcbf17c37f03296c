//! The only module that draws: one line per host with its current step
//! (indicatif) on a terminal, plain lines otherwise or with NO_COLOR.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: Option<MultiProgress>,
}

pub struct HostLine {
    bar: Option<ProgressBar>,
    host: String,
}

impl Progress {
    pub fn new() -> Self {
        let fancy = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Progress {
            multi: fancy.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    pub fn host(&self, host: &str) -> HostLine {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:10} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(host.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        HostLine {
            bar,
            host: host.to_string(),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl HostLine {
    pub fn step(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    /// A result line: above the live lines on a terminal, else on stdout.
    pub fn say(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => println!("{msg}"),
        }
    }

    pub fn done(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.finish_with_message(msg.to_string()),
            None => eprintln!("{:10} {msg}", self.host),
        }
    }
}
