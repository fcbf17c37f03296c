//! `vakt demo-web --config FILE`: where the shop keeps its carts. Without a
//! file, or without a `[db]` table in it, carts stay in the process's memory;
//! with one, in that MariaDB. Read through the runtime's spanned reader, so a
//! mistake names its file, line and column. The password is never in this
//! file: `password_file` (or `--db-password-file`) names a 0600 file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::reader::{Fields, parse};
use crate::config::{Diagnostics, Source};

/// How long connecting to the database or one operation on it may take
/// before the shop answers 503, unless `[db] timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The shop's settings from its config file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DemoConfig {
    pub db: Option<DbConfig>,
}

/// `[db]`: the MariaDB the carts and orders live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub addr: SocketAddr,
    pub database: String,
    pub user: String,
    /// A file holding the password (surrounding whitespace is not part of it).
    pub password_file: PathBuf,
    /// Bound on connecting and on each operation (`timeout = "3s"`).
    pub timeout: Duration,
}

/// What went wrong reading the config or the password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("demo-web cannot read its config {path} (check --config)")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(
        "demo-web cannot read the database password from {path} (vakt up writes it; check [db] password_file or --db-password-file)"
    )]
    Password {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "demo-web: the database password file {path} is empty: write the password into it (vakt up does)"
    )]
    EmptyPassword { path: String },
}

impl DemoConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<DemoConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&Source::new(path.display().to_string(), text))
    }

    /// Checks a config's text, reporting every problem at once.
    pub fn parse(src: &Source) -> Result<DemoConfig, ConfigError> {
        let doc = parse(src).map_err(ConfigError::Invalid)?;
        let mut d = Diagnostics::new();
        let mut root = Fields::root(src, &doc);
        let db = root.table("db", &mut d).map(|mut t| {
            let db = read_db(&mut t, src, &mut d);
            t.finish(&mut d);
            db
        });
        root.finish(&mut d);
        if d.has_errors() {
            return Err(ConfigError::Invalid(d));
        }
        Ok(DemoConfig { db: db.flatten() })
    }
}

fn read_db(t: &mut Fields<'_>, src: &Source, d: &mut Diagnostics) -> Option<DbConfig> {
    let table = t.span();
    let missing = |d: &mut Diagnostics, key: &str, example: &str| {
        d.error_hint(
            src,
            table.clone(),
            format!("`db.{key}` is missing"),
            format!("add {key} = {example}"),
        );
    };
    let host = t.str("host", d);
    let ip = host
        .clone()
        .and_then(|(h, span)| match h.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                d.error_hint(
                    src,
                    Some(span),
                    format!("`db.host` \"{h}\" is not an IP address"),
                    "give the DB host's private address, e.g. \"10.10.0.20\"",
                );
                None
            }
        });
    let port = t.int("port", 1, 65535, d).unwrap_or(3306) as u16;
    let database = t.string("database", d);
    let user = t.string("user", d);
    let password_file = t.string("password_file", d);
    let timeout = t.duration("timeout", d).unwrap_or(DEFAULT_TIMEOUT);
    if host.is_none() {
        missing(d, "host", "\"10.10.0.20\"");
    }
    if database.is_none() {
        missing(d, "database", "\"shop\"");
    }
    if user.is_none() {
        missing(d, "user", "\"shop\"");
    }
    if password_file.is_none() {
        missing(d, "password_file", "\"/etc/vakt/demo-web-db.password\"");
    }
    Some(DbConfig {
        addr: SocketAddr::new(ip?, port),
        database: database?,
        user: user?,
        password_file: PathBuf::from(password_file?),
        timeout,
    })
}

/// The password in `path`, without the newline (or other whitespace) around
/// it. `-` is standard input: systemd opens the root-only file there for a
/// DynamicUser service (`StandardInput=file:`), which could not open it.
pub fn read_password(path: &Path) -> Result<String, ConfigError> {
    let read = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    let text = read.map_err(|source| ConfigError::Password {
        path: path.display().to_string(),
        source,
    })?;
    let pw = text.trim();
    if pw.is_empty() {
        return Err(ConfigError::EmptyPassword {
            path: path.display().to_string(),
        });
    }
    Ok(pw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DemoConfig, String> {
        DemoConfig::parse(&Source::new("demo-web.toml", text)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_db_table_names_the_server_and_the_password_file() {
        let c = parse(
            "[db]\nhost = \"10.10.0.20\"\nport = 3307\ndatabase = \"shop\"\nuser = \"shop\"\n\
             password_file = \"/etc/vakt/demo-web-db.password\"\ntimeout = \"500ms\"\n",
        )
        .unwrap();
        let db = c.db.unwrap();
        assert_eq!(db.addr, "10.10.0.20:3307".parse().unwrap());
        assert_eq!(db.database, "shop");
        assert_eq!(db.user, "shop");
        assert_eq!(
            db.password_file,
            PathBuf::from("/etc/vakt/demo-web-db.password")
        );
        assert_eq!(db.timeout, Duration::from_millis(500));
    }

    #[test]
    fn no_db_table_keeps_carts_in_memory() {
        assert_eq!(parse("").unwrap(), DemoConfig::default());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_place() {
        let e = parse("[db]\nhost = \"db01\"\nport = 70000\npasword_file = \"/x\"\n").unwrap_err();
        for want in [
            "demo-web.toml:2:8: error: `db.host` \"db01\" is not an IP address",
            "`db.port` is 70000, it must be between 1 and 65535",
            "`db.database` is missing",
            "`db.user` is missing",
            "`db.password_file` is missing",
            "unknown key `pasword_file` in `db`",
            "did you mean `password_file`?",
        ] {
            assert!(e.contains(want), "{want:?} not in:\n{e}");
        }
    }

    #[test]
    fn the_password_file_loses_its_newline_and_an_empty_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("vakt-demo-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "it's secret\n").unwrap();
        assert_eq!(read_password(&f).unwrap(), "it's secret");
        std::fs::write(&f, "\n").unwrap();
        let e = read_password(&f).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        let e = read_password(&dir.join("none")).unwrap_err().to_string();
        assert!(
            e.contains("cannot read the database password from") && e.contains("none"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
