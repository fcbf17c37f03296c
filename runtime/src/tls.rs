//! TLS termination: a rustls [`ServerConfig`] per TLS listener address, built
//! from PEM files as HAProxy's `crt` reads them (the chain and the key in one
//! file; a directory means every `.pem` in it). The certificate is chosen by
//! SNI: the exact name, then a `*.` wildcard one label up, then the first
//! certificate loaded (clients without SNI). TLS 1.2 and 1.3 only, with
//! rustls's own list of modern cipher suites; ALPN as configured (`h2`,
//! `http/1.1`). A `FILE.ocsp` next to a PEM is stapled.
//!
//! Certificates are read when the state is built, so a reload (SIGHUP,
//! `vakt proxy reload`, or a changed certificate file noticed by the
//! supervisor) gives new handshakes the new certificate while established
//! connections go on with the old one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{TlsBind, TlsVersion};

/// Why a TLS listener cannot be set up; names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: PathBuf, what: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// The provider every TLS listener uses (ring; see Cargo.toml for why).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server side of one TLS listener.
pub fn server_config(bind: &TlsBind) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let store = CertStore::load(&bind.certs, &provider)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match bind.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(store));
    config.alpn_protocols = bind.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// Certificates by the names they are valid for.
#[derive(Debug)]
struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl CertStore {
    fn load(paths: &[PathBuf], provider: &CryptoProvider) -> Result<CertStore, TlsError> {
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| file_error(p, format!("cannot read the folder: {e}")))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "pem"))
                    .collect();
                // Sorted, so the default certificate does not depend on the
                // order the file system lists them in.
                in_dir.sort();
                if in_dir.is_empty() {
                    return Err(file_error(
                        p,
                        "has no .pem file (a crt folder holds PEM files with the chain and the key)",
                    ));
                }
                files.extend(in_dir);
            } else {
                files.push(p.clone());
            }
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for f in &files {
            let (key, names) = load_pem(f, provider)?;
            for n in names {
                let n = n.to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(n),
                }
                .or_insert_with(|| key.clone());
            }
            default.get_or_insert(key);
        }
        let Some(default) = default else {
            return Err(TlsError::File {
                path: PathBuf::from("crt"),
                what: "no certificate given".into(),
            });
        };
        Ok(CertStore {
            exact,
            wildcard,
            default,
        })
    }

    fn select(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = sni.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return k.clone();
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(hello.server_name()))
    }
}

/// One PEM file: its certificate chain (leaf first) and private key, and
/// the DNS names the leaf is valid for.
fn load_pem(
    path: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, Vec<String>), TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(file_error(
            path,
            "holds no certificate: a crt file has the chain (leaf first) and the key, in PEM",
        ));
    };
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        file_error(
            path,
            "holds no private key: append the key (PEM) to the chain, as HAProxy's crt wants",
        )
    })?;
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| file_error(path, format!("the first certificate cannot be read: {e}")))?
        .valid_dns_names()
        .map(str::to_string)
        .collect();
    let mut certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| file_error(path, format!("the key does not fit the certificate: {e}")))?;
    let mut ocsp = path.as_os_str().to_owned();
    ocsp.push(".ocsp");
    if let Ok(staple) = std::fs::read(&ocsp) {
        certified.ocsp = Some(staple);
    }
    Ok((Arc::new(certified), names))
}

/// The DNS names the certificate in PEM file `path` is valid for, after the
/// same checks a listener makes (a chain, a key that fits it), so that a
/// deploy tool can refuse a file before any proxy would.
pub fn pem_names(path: &Path) -> Result<Vec<String>, TlsError> {
    load_pem(path, &provider()).map(|(_, names)| names)
}

/// The modification times of every certificate file a config uses, to
/// notice renewals (an ACME client writing a new PEM).
pub fn fingerprint(binds: &[&TlsBind]) -> Vec<(PathBuf, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    for b in binds {
        for p in &b.certs {
            let mut push = |f: PathBuf| {
                let t = std::fs::metadata(&f).and_then(|m| m.modified()).ok();
                out.push((f, t));
            };
            if p.is_dir() {
                if let Ok(rd) = std::fs::read_dir(p) {
                    let mut files: Vec<PathBuf> =
                        rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    files.sort();
                    files.into_iter().for_each(&mut push);
                }
            } else {
                push(p.clone());
            }
        }
    }
    out
}

/// The server settings of every TLS address in `config`, certificates read.
pub fn build_all(
    config: &crate::config::Config,
) -> Result<HashMap<std::net::SocketAddr, Arc<ServerConfig>>, TlsError> {
    let mut out = HashMap::new();
    for fe in &config.frontends {
        for t in &fe.tls {
            out.insert(t.addr, server_config(t)?);
        }
    }
    Ok(out)
}
