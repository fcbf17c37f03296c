//! The local transport: a "host" is a folder (`<state>/<cluster>/<host>/`)
//! standing in for its filesystem root, and its services are local processes
//! started through the same rendered init scripts as on a real host.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Output, Transport};

/// Writing a file and starting a process exclude each other. A process
/// forked by another thread while a file is open for writing holds that
/// descriptor until it execs, and exec'ing the file then fails with ETXTBSY
/// ("Text file busy"): a binary pushed to one local host and started right
/// away would fail while another host's thread starts something. `spawn`
/// returns once the child has exec'd (closing inherited descriptors), so
/// holding the read side across it is enough.
static FORK_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub struct Local {
    host: String,
    root: PathBuf,
    root_str: String,
}

impl Local {
    pub fn new(host: &str, root: PathBuf) -> Self {
        let root_str = root.display().to_string();
        Local {
            host: host.to_string(),
            root,
            root_str,
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Transport for Local {
    fn host(&self) -> &str {
        &self.host
    }

    fn root(&self) -> &str {
        &self.root_str
    }

    fn run(&self, cmd: &str) -> io::Result<Output> {
        // Commands run in the host's folder, as on a real host from its
        // root. A host never deployed has no folder yet, and looking at it
        // (`status`, `plan`) must not create one: such commands run in `/`.
        let cwd = if self.root.is_dir() {
            self.root.as_path()
        } else {
            Path::new("/")
        };
        let child = {
            let _spawning = FORK_LOCK.read().unwrap_or_else(|e| e.into_inner());
            Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(cwd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?
        };
        let out = child.wait_with_output()?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.at(path)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put(&self, path: &str, content: &[u8], mode: u32) -> io::Result<()> {
        let dest = self.at(path);
        let dir = dest.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)?;
        if dest.exists() {
            std::fs::copy(&dest, prev(&dest))?;
        }
        let tmp = dest.with_extension("vakt-tmp");
        {
            let _writing = FORK_LOCK.write().unwrap_or_else(|e| e.into_inner());
            // The mode is set before the content is written: a key (mode
            // 0600) is never readable by others, not even for a moment.
            let mut f = std::fs::File::create(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
            f.write_all(content)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &dest)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn restore(&self, path: &str) -> io::Result<bool> {
        let dest = self.at(path);
        let p = prev(&dest);
        if !p.exists() {
            return Ok(false);
        }
        std::fs::rename(p, dest)?;
        Ok(true)
    }
}

fn prev(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".vakt-prev");
    PathBuf::from(s)
}
