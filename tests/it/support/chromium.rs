//! Headless Chromium for the suites that look at pages as a person would:
//! a screenshot at a window size, or the page printed to PDF, kept under
//! `target/test-artefacts/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// Where screenshots are kept: `target/test-artefacts/`, next to the
/// integration program's own scratch folder.
pub fn artefacts() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium loads `url` in a `width`×`height` window and writes a
/// PNG to `out`; panics with Chromium's output if it does not within a
/// minute. JavaScript stays on because `--screenshot` itself needs it
/// (`--blink-settings=scriptEnabled=false` makes Chromium 156 write no
/// file); the page's CSP (`default-src 'none'`) forbids every script, so
/// what Chromium shows is the page without any.
pub fn screenshot(url: &str, width: u32, height: u32, out: &Path) {
    if let Err(output) = try_screenshot(url, width, height, out) {
        panic!("chromium wrote no screenshot {}:\n{output}", out.display());
    }
    println!("screenshot: {}", out.display());
}

/// As `screenshot`, but Chromium's output when it writes no file.
pub fn try_screenshot(url: &str, width: u32, height: u32, out: &Path) -> Result<(), String> {
    run(
        &[
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", out.display()),
        ],
        url,
        out,
    )
}

/// Headless Chromium prints `url` to a PDF at `out` (A4, as a browser's
/// print dialog would, with the page's print styles); panics with
/// Chromium's output when it writes no file.
pub fn print_to_pdf(url: &str, out: &Path) {
    if let Err(output) = run(
        &[
            "--no-pdf-header-footer".to_string(),
            format!("--print-to-pdf={}", out.display()),
        ],
        url,
        out,
    ) {
        panic!("chromium wrote no PDF {}:\n{output}", out.display());
    }
    println!("printed: {}", out.display());
}

/// Runs headless Chromium with `args` on `url` until it writes `out` (or a
/// minute passes); Chromium's output when it writes nothing.
fn run(args: &[String], url: &str, out: &Path) -> Result<(), String> {
    let profile = TempDir::new("chromium");
    let _ = std::fs::remove_file(out);
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            // Chromium refuses to run as root with its sandbox on; the page
            // it loads is our own, on loopback.
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--force-device-scale-factor=1",
            "--no-first-run",
            "--disable-extensions",
            // No connections of its own: this machine has no way out.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    if out.is_file() {
        return Ok(());
    }
    // D-Bus complaints (no session bus here) drown the one line that says
    // what went wrong.
    Err(String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.contains("dbus"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A decoded RGB(A) screenshot.
pub struct Shot {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<[u8; 3]>,
}

impl Shot {
    pub fn read(path: &Path) -> Self {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let step = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected PNG colour type {other:?}"),
        };
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(step)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Shot {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    /// The first pixel row holding at least `min` pixels of `colour`.
    pub fn first_row_with(&self, colour: [u8; 3], min: usize) -> Option<u32> {
        (0..self.height).find(|y| {
            let row = &self.rgb[(y * self.width) as usize..((y + 1) * self.width) as usize];
            row.iter().filter(|p| **p == colour).count() >= min
        })
    }
}
