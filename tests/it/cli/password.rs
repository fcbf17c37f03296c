//! `vakt hash-password`: one line from a pipe, or asked twice without echo
//! on a terminal (driven through a pty by util-linux `script`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{eventually, vakt};

#[test]
fn hash_password_from_a_pipe_hashes_the_line() {
    let mut child = vakt()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout.clone()).unwrap();
    let hash = hash.trim_end();
    assert!(hash.starts_with("$6$"), "{hash}");
    assert!(vakt_runtime::auth::verify("correct horse", hash));
    assert!(out.stderr.is_empty(), "no prompt in a pipe: {out:?}");
}

/// Runs `vakt hash-password` on a pty, types `first` after the first prompt
/// and `second` after the second; returns the exit status and everything
/// the terminal showed. `None` when `script` is not installed.
fn on_a_terminal(first: &str, second: &str) -> Option<(bool, String)> {
    let cmd = format!("{} hash-password", env!("CARGO_BIN_EXE_vakt"));
    let mut child = match Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return None,
    };
    let screen = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    // Type only once the prompt shows: echo is off by then, as for a person.
    let shown = |s: &str| screen.lock().unwrap().contains(s);
    assert!(eventually(Duration::from_secs(10), || shown("Password: ")));
    stdin.write_all(format!("{first}\n").as_bytes()).unwrap();
    assert!(eventually(Duration::from_secs(10), || shown(
        "Password again: "
    )));
    stdin.write_all(format!("{second}\n").as_bytes()).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let text = screen.lock().unwrap().clone();
    Some((status.success(), text))
}

#[test]
fn hash_password_on_a_terminal_does_not_echo_and_asks_twice() {
    let Some((ok, screen)) = on_a_terminal("s3cret-pw", "s3cret-pw") else {
        println!("skipped: `script` (util-linux) is not installed");
        return;
    };
    assert!(ok, "{screen}");
    assert!(
        !screen.contains("s3cret-pw"),
        "the password was echoed:\n{screen}"
    );
    let hash = screen
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("$6$"))
        .unwrap_or_else(|| panic!("no hash in:\n{screen}"));
    assert!(vakt_runtime::auth::verify("s3cret-pw", hash));

    let Some((ok, screen)) = on_a_terminal("s3cret-pw", "s3cret-px") else {
        return;
    };
    assert!(!ok, "{screen}");
    assert!(screen.contains("the two passwords differ"), "{screen}");
    assert!(!screen.contains("$6$"), "{screen}");
}
