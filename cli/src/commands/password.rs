//! `vakt hash-password`: a `$6$` hash of a password, read without echo and
//! asked twice on a terminal, or read from stdin as one line in a pipe. The
//! hashing itself is the runtime's (`auth::hash_password`).

use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use anyhow::{Context, bail};

pub(super) fn run() -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let pw = if stdin.is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let again = prompt_hidden("Password again: ")?;
        if first != again {
            bail!("the two passwords differ; run `vakt hash-password` again");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if pw.is_empty() {
        bail!(
            "empty password; type one at the prompt or pipe one in: `printf '%s' \"$PW\" | vakt hash-password`"
        );
    }
    println!("{}", vakt_runtime::auth::hash_password(&pw));
    Ok(ExitCode::SUCCESS)
}

/// Prints `prompt` on stderr and reads one line from the terminal on stdin
/// with echo off; echo comes back when the line is read, also on error.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let _echo_off = EchoOff::new(stdin.as_raw_fd())?;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // The Enter the user typed was not echoed either.
    eprintln!();
    read.context("reading the password from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// The terminal's echo switched off until this is dropped, which puts the
/// previous settings back.
struct EchoOff {
    fd: i32,
    saved: libc::termios,
}

impl EchoOff {
    fn new(fd: i32) -> anyhow::Result<Self> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("reading the terminal's settings to turn echo off");
        }
        let mut quiet = saved;
        // ICANON stays on: the line is still edited (backspace) by the
        // terminal and handed over whole on Enter.
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK);
        // TCSANOW, not TCSAFLUSH: keep what was typed ahead of the prompt.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error()).context("turning the terminal's echo off");
        }
        Ok(EchoOff { fd, saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores settings tcgetattr returned for the same fd.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
