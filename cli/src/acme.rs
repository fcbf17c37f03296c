//! ACME certificates on the load balancers (RFC 8555, HTTP-01), the part
//! that runs on an LB as `vakt acme renew` (from the timer `up` installs, and
//! once by `up` itself). Every LB holds the same account key and the same
//! certificate key (`up` generates both once and pushes them with mode 0600),
//! so:
//! - the proxies answer challenges statelessly (the runtime's `acme`): the
//!   LB the CA reaches answers right, VIP or not;
//! - a certificate one LB obtained fits every LB's key: the others take it
//!   from that LB's TLS handshake (`sync`), so all serve the same one.
//!
//! Also the key material `up` needs: `generate_key`, `thumbprint`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What `/etc/vakt/acme.toml` on an LB says (rendered by `up`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The ACME directory URL.
    pub directory: String,
    /// The account's contact, `mailto:` added.
    pub email: Option<String>,
    /// A CA to trust for the ACME server's own HTTPS (test servers).
    pub ca_file: Option<PathBuf>,
    pub domains: Vec<String>,
    /// Where the proxy reads the chain and key (PEM, written 0600).
    pub pem: PathBuf,
    pub account_key: PathBuf,
    pub cert_key: PathBuf,
    /// The account's URL once registered (a cache; `renew` writes it).
    pub account_state: PathBuf,
    /// The other LBs' TLS addresses (private network), to take a newer
    /// certificate from.
    pub peers: Vec<String>,
    /// This LB's own TLS address: after installing a certificate, `renew`
    /// waits until the proxy serves it, so the next LB can take it.
    #[serde(default)]
    pub own: Option<String>,
    /// Order a new certificate when less than 1/`order_below` of the
    /// current one's lifetime is left: 3 on the first LB, 6 on the others,
    /// so that normally one LB orders and the rest take its certificate.
    pub order_below: u32,
}

impl Config {
    pub fn read(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {} (vakt up writes it)", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: not an ACME config", path.display()))
    }
}

/// A certificate as `renew` judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub not_before: i64,
    pub not_after: i64,
    /// Issuer and subject are the same: `up`'s placeholder, never kept.
    pub self_signed: bool,
    pub names: Vec<String>,
    /// The SubjectPublicKeyInfo, to tell whether it fits our key.
    pub spki: Vec<u8>,
}

impl Leaf {
    pub fn parse(der: &[u8]) -> anyhow::Result<Leaf> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    names.push(d.to_string());
                }
            }
        }
        Ok(Leaf {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            self_signed: cert.issuer() == cert.subject(),
            names,
            spki: cert.public_key().raw.to_vec(),
        })
    }

    /// Seconds left at `now`.
    pub fn left(&self, now: i64) -> i64 {
        self.not_after - now
    }

    /// Less than 1/`below` of its lifetime left, a placeholder, or a
    /// domain it does not name: time to order.
    pub fn due(&self, now: i64, below: u32, domains: &[String]) -> bool {
        let life = (self.not_after - self.not_before).max(1);
        self.self_signed
            || self.left(now) < life / i64::from(below.max(1))
            || !domains.iter().all(|d| self.names.iter().any(|n| n == d))
    }
}

/// What one `renew` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The current certificate is fresh: nothing done.
    Fresh { left: String },
    /// A newer certificate was taken from another LB.
    Synced { from: String, left: String },
    /// A new certificate was ordered and installed.
    Ordered { left: String },
    /// Due, but not this LB's turn (`order_below`) and no LB had a newer one.
    Waiting { left: String },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Fresh { left } => write!(f, "certificate fresh, {left}"),
            Outcome::Synced { from, left } => {
                write!(f, "took the newer certificate of {from}, {left}")
            }
            Outcome::Ordered { left } => write!(f, "ordered a new certificate, {left}"),
            Outcome::Waiting { left } => {
                write!(f, "certificate due ({left}) but another LB orders first")
            }
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Time left in words: days, or hours under two days.
fn left_words(secs: i64) -> String {
    if secs >= 2 * 86_400 {
        format!("{} days left", secs.div_euclid(86_400))
    } else {
        format!("{} hours left", secs.div_euclid(3600))
    }
}

/// A new ECDSA P-256 key, PKCS#8 PEM (the account's or the certificate's).
pub fn generate_key() -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating an ECDSA P-256 key")?;
    Ok(key.serialize_pem())
}

fn pkcs8_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PKCS#8 PEM key: {e}"))?;
    Ok(der.secret_pkcs8_der().to_vec())
}

/// The JWK thumbprint (RFC 7638) of a P-256 key in PKCS#8 PEM: what the
/// proxies append to a challenge token.
pub fn thumbprint(key_pem: &str) -> anyhow::Result<String> {
    use ring::signature::KeyPair;
    let der = pkcs8_der(key_pem)?;
    let rng = ring::rand::SystemRandom::new();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &rng,
    )
    .map_err(|e| anyhow::anyhow!("not an ECDSA P-256 key: {e}"))?;
    // An uncompressed point: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        bail!("unexpected P-256 public key length {}", point.len());
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // RFC 7638 §3.2: the required members in lexicographic order, no
    // white space.
    let jwk = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        b64.encode(&point[1..33]),
        b64.encode(&point[33..65])
    );
    Ok(b64.encode(Sha256::digest(jwk.as_bytes())))
}

/// The leaf of a PEM chain, if the file has one.
fn current(pem: &Path) -> Option<Leaf> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let bytes = std::fs::read(pem).ok()?;
    let leaf = CertificateDer::pem_slice_iter(&bytes).next()?.ok()?;
    Leaf::parse(&leaf).ok()
}

/// The SubjectPublicKeyInfo of our certificate key, as a certificate for it
/// carries it.
fn our_spki(cert_key_pem: &str) -> anyhow::Result<Vec<u8>> {
    let key = rcgen::KeyPair::from_pem(cert_key_pem).context("reading the certificate key")?;
    Ok(rcgen::PublicKeyData::subject_public_key_info(&key))
}

/// Writes `chain` (PEM) and the key as the proxy's PEM file, atomically and
/// 0600 from the start; the proxy notices the new file and serves it to new
/// handshakes.
fn install(pem: &Path, chain_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = pem.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = pem.with_extension("pem.vakt-new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let mut text = chain_pem.trim_end().to_string();
    text.push('\n');
    text.push_str(key_pem.trim_end());
    text.push('\n');
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, pem).with_context(|| format!("installing {}", pem.display()))
}

/// A self-signed certificate for the domains with our key, when the PEM
/// file is missing, so the proxy's TLS listener can start before the first
/// order (the proxy answers challenges on plain HTTP meanwhile). Never
/// replaces a file that exists.
pub fn placeholder(cfg: &Config) -> anyhow::Result<bool> {
    if cfg.pem.exists() {
        return Ok(false);
    }
    let key_pem = read_secret(&cfg.cert_key)?;
    let key = rcgen::KeyPair::from_pem(&key_pem).context("reading the certificate key")?;
    let mut params = rcgen::CertificateParams::new(cfg.domains.clone())
        .context("the domains for the placeholder certificate")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vakt placeholder: ACME pending");
    let cert = params
        .self_signed(&key)
        .context("making the placeholder certificate")?;
    install(&cfg.pem, &cert.pem(), &key_pem)?;
    Ok(true)
}

fn read_secret(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (vakt up pushes it)", path.display()))
}

/// Accepts any server certificate: `sync` judges the chain itself (it must
/// carry our own public key, be CA-issued and newer), so who signed it for
/// the handshake does not matter. Handshake signatures are still checked.
#[derive(Debug)]
struct TakeAny(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for TakeAny {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain (DER, leaf first) a peer LB's TLS listener presents for `sni`.
fn peer_chain(addr: &str, sni: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    use std::net::ToSocketAddrs;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS settings")?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(TakeAny(provider)))
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(sni.to_string())
        .with_context(|| format!("{sni} is not a DNS name"))?;
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).context("a TLS client")?;
    let sa = addr
        .to_socket_addrs()
        .with_context(|| format!("{addr}: not an address"))?
        .next()
        .with_context(|| format!("{addr}: no address"))?;
    let mut sock = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(3))
        .with_context(|| format!("connecting to {addr}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .with_context(|| format!("TLS handshake with {addr}"))?;
    }
    let chain = conn
        .peer_certificates()
        .with_context(|| format!("{addr} sent no certificate"))?;
    Ok(chain.iter().map(|c| c.to_vec()).collect())
}

fn to_pem(chain: &[Vec<u8>]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = String::new();
    for der in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = b64.encode(der);
        for line in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// A peer's certificate: where it came from, its chain (DER, leaf first),
/// its leaf.
type PeerCert = (String, Vec<Vec<u8>>, Leaf);

/// The newest CA-issued certificate for our key that a peer serves, if it
/// is newer than `have`; peers that cannot be reached are skipped (the
/// error is returned for the log only).
fn best_peer(
    cfg: &Config,
    spki: &[u8],
    have: Option<&Leaf>,
    now: i64,
) -> (Option<PeerCert>, Vec<String>) {
    let mut best: Option<PeerCert> = None;
    let mut errors = Vec::new();
    let sni = cfg.domains.first().map_or("localhost", String::as_str);
    for peer in &cfg.peers {
        let chain = match peer_chain(peer, sni) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{peer}: {e:#}"));
                continue;
            }
        };
        let Some(leaf) = chain.first().and_then(|d| Leaf::parse(d).ok()) else {
            errors.push(format!("{peer}: its certificate cannot be read"));
            continue;
        };
        let usable = leaf.spki == spki
            && !leaf.self_signed
            && leaf.not_before <= now
            && leaf.left(now) > 0
            && cfg
                .domains
                .iter()
                .all(|d| leaf.names.iter().any(|n| n == d));
        let newer = have.is_none_or(|h| h.self_signed || leaf.not_after > h.not_after);
        let better = best
            .as_ref()
            .is_none_or(|(_, _, b)| leaf.not_after > b.not_after);
        if usable && newer && better {
            best = Some((peer.clone(), chain, leaf));
        }
    }
    (best, errors)
}

/// One run: take a newer certificate from a peer if one has it; else, when
/// due and it is this LB's turn (or `force`), order one. Ordering needs the
/// proxies to be answering challenges on the domains' port 80.
pub fn renew(cfg: &Config, force: bool) -> anyhow::Result<Outcome> {
    let key_pem = read_secret(&cfg.cert_key)?;
    let spki = our_spki(&key_pem)?;
    let t = now();
    let have = current(&cfg.pem).filter(|l| l.spki == spki);
    let (peer, errors) = best_peer(cfg, &spki, have.as_ref(), t);
    for e in &errors {
        eprintln!("acme: peer not read: {e}");
    }
    if let Some((from, chain, leaf)) = peer {
        install(&cfg.pem, &to_pem(&chain), &key_pem)?;
        wait_served(cfg, &chain[0]);
        return Ok(Outcome::Synced {
            from,
            left: left_words(leaf.left(t)),
        });
    }
    let left = left_words(have.as_ref().map_or(0, |l| l.left(t)));
    let due_first = have.as_ref().is_none_or(|l| l.due(t, 3, &cfg.domains));
    if !due_first && !force {
        return Ok(Outcome::Fresh { left });
    }
    let ours = have
        .as_ref()
        .is_none_or(|l| l.due(t, cfg.order_below, &cfg.domains));
    if !ours && !force {
        return Ok(Outcome::Waiting { left });
    }
    let chain = order(cfg, &key_pem)?;
    install(&cfg.pem, &chain, &key_pem)?;
    let leaf = current(&cfg.pem).context("reading the certificate just installed")?;
    if let Some(der) = first_der(&chain) {
        wait_served(cfg, &der);
    }
    Ok(Outcome::Ordered {
        left: left_words(leaf.left(t)),
    })
}

fn first_der(chain_pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// Waits (10 s at most) until this LB's proxy serves `leaf` (it notices a
/// new PEM file within a second or two), so that the LB renewing after it
/// takes the new certificate, not the old one. A proxy that does not run
/// is not waited for: it reads the file when it starts.
fn wait_served(cfg: &Config, leaf: &[u8]) {
    let Some(own) = &cfg.own else { return };
    let sni = cfg.domains.first().map_or("localhost", String::as_str);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match peer_chain(own, sni) {
            Ok(chain) if chain.first().is_some_and(|c| c == leaf) => return,
            Ok(_) => {}
            Err(_) => return,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("acme: the proxy at {own} does not serve the new certificate yet");
}

/// The account's URL, kept after the first registration.
#[derive(Serialize, Deserialize)]
struct AccountState {
    directory: String,
    id: String,
}

/// Orders a certificate for the domains with our key: account (registered
/// once, then remembered), order, HTTP-01 answered by the proxies, CSR,
/// the chain (PEM).
fn order(cfg: &Config, key_pem: &str) -> anyhow::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the ACME client")?;
    rt.block_on(order_async(cfg, key_pem))
}

async fn order_async(cfg: &Config, cert_key_pem: &str) -> anyhow::Result<String> {
    use instant_acme::{
        Account, AuthorizationStatus, ChallengeType, Identifier, Key, NewOrder, OrderStatus,
        RetryPolicy,
    };
    let builder = || match &cfg.ca_file {
        Some(ca) => Account::builder_with_root(ca)
            .with_context(|| format!("trusting {} for the ACME server", ca.display())),
        None => Account::builder().context("the ACME client's TLS settings"),
    };
    let account_pem = read_secret(&cfg.account_key)?;
    let der = pkcs8_der(&account_pem)?;
    let saved: Option<AccountState> = std::fs::read_to_string(&cfg.account_state)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|s: &AccountState| s.directory == cfg.directory);
    let account = match saved {
        Some(s) => builder()?
            .from_parts(
                s.id,
                rustls_pki_types::PrivatePkcs8KeyDer::from(der),
                cfg.directory.clone(),
            )
            .await
            .with_context(|| format!("the ACME directory {}", cfg.directory))?,
        None => {
            let key = Key::from_pkcs8_der(rustls_pki_types::PrivatePkcs8KeyDer::from(der.clone()))
                .context("the account key")?;
            let (account, _) = builder()?
                .create_from_key(
                    (
                        key,
                        rustls_pki_types::PrivateKeyDer::Pkcs8(
                            rustls_pki_types::PrivatePkcs8KeyDer::from(der),
                        ),
                    ),
                    cfg.directory.clone(),
                )
                .await
                .with_context(|| format!("registering the account at {}", cfg.directory))?;
            if let Some(email) = &cfg.email {
                let contact = format!("mailto:{email}");
                account
                    .update_contacts(&[contact.as_str()])
                    .await
                    .context("setting the account's contact")?;
            }
            let state = AccountState {
                directory: cfg.directory.clone(),
                id: account.id().to_string(),
            };
            if let Some(dir) = cfg.account_state.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // A cache: losing it only means registering again (same key,
            // same account).
            let _ = std::fs::write(&cfg.account_state, serde_json::to_vec(&state)?);
            account
        }
    };
    let ids: Vec<Identifier> = cfg
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .context("placing the order")?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.context("reading an authorization")?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authz.challenge(ChallengeType::Http01).with_context(|| {
            "the ACME server offers no http-01 challenge (vakt answers http-01 only)".to_string()
        })?;
        challenge
            .set_ready()
            .await
            .context("answering the challenge")?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&retry)
        .await
        .context("waiting for the CA to validate")?;
    if status != OrderStatus::Ready {
        bail!(
            "the CA did not validate the domains (order {status:?}): port 80 of every domain must reach an LB whose proxy runs with this account's thumbprint"
        );
    }
    let key = rcgen::KeyPair::from_pem(cert_key_pem).context("reading the certificate key")?;
    let params = rcgen::CertificateParams::new(cfg.domains.clone()).context("the domains")?;
    let csr = params
        .serialize_request(&key)
        .context("making the certificate request")?;
    order
        .finalize_csr(csr.der())
        .await
        .context("finalizing the order")?;
    order
        .poll_certificate(&retry)
        .await
        .context("downloading the certificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_rfc_7638s_of_the_public_key() {
        let pem = generate_key().unwrap();
        let t = thumbprint(&pem).unwrap();
        assert_eq!(t.len(), 43);
        assert!(t.bytes().all(vakt_runtime::acme::is_base64url));
        // Stable for one key, different for another.
        assert_eq!(thumbprint(&pem).unwrap(), t);
        assert_ne!(thumbprint(&generate_key().unwrap()).unwrap(), t);
    }

    #[test]
    fn a_certificate_is_due_with_a_third_of_its_life_left_or_as_a_placeholder() {
        let leaf = Leaf {
            not_before: 0,
            not_after: 90 * 86_400,
            self_signed: false,
            names: vec!["shop.example".into()],
            spki: Vec::new(),
        };
        let d = ["shop.example".to_string()];
        assert!(!leaf.due(59 * 86_400, 3, &d));
        assert!(leaf.due(61 * 86_400, 3, &d));
        // The other LBs wait for the first one until a sixth is left.
        assert!(!leaf.due(61 * 86_400, 6, &d));
        assert!(leaf.due(76 * 86_400, 6, &d));
        assert!(leaf.due(0, 3, &["www.shop.example".to_string()]));
        let placeholder = Leaf {
            self_signed: true,
            ..leaf
        };
        assert!(placeholder.due(0, 6, &d));
    }

    #[test]
    fn a_placeholder_is_made_once_and_carries_our_key() {
        let dir = std::env::temp_dir().join(format!("vakt-acme-ph-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = generate_key().unwrap();
        std::fs::write(dir.join("cert.key"), &key).unwrap();
        let cfg = Config {
            directory: "https://acme.invalid/dir".into(),
            email: None,
            ca_file: None,
            domains: vec!["shop.example".into()],
            pem: dir.join("tls/site.pem"),
            account_key: dir.join("account.key"),
            cert_key: dir.join("cert.key"),
            account_state: dir.join("account.json"),
            peers: Vec::new(),
            own: None,
            order_below: 3,
        };
        assert!(placeholder(&cfg).unwrap());
        assert!(!placeholder(&cfg).unwrap());
        let leaf = current(&cfg.pem).unwrap();
        assert!(leaf.self_signed);
        assert_eq!(leaf.spki, our_spki(&key).unwrap());
        assert_eq!(leaf.names, vec!["shop.example".to_string()]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg.pem).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The proxy reads it as any PEM: the chain, then the key.
        assert_eq!(
            vakt_runtime::pem_names(&cfg.pem).unwrap(),
            vec!["shop.example".to_string()]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
