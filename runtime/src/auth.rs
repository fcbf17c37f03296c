//! HTTP Basic authentication (RFC 7617) for the stats page, against crypt(3)
//! password hashes: `$6$` sha-512 and `$5$` sha-256, as `mkpasswd` and glibc
//! write them. A hash check costs milliseconds by design and monitoring polls
//! the stats page, so [`Credentials`] remembers headers that verified (never
//! failures). The proxy decides when to ask; this module only answers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderValue;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::{Password, StatsUser};

/// The crypt(3) salt alphabet.
const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// glibc reads at most 16 salt characters.
const SALT_LEN: usize = 16;
/// Verified `Authorization` values remembered per stats page.
const CACHE_MAX: usize = 64;
/// Longest password that is hashed. sha-crypt hashes the password once per
/// byte of its length (step 14 of the spec), so the cost grows with the
/// square of the length: a 16 KB password in a header would cost the proxy
/// about a second of CPU. 256 bytes keeps the worst case near a normal check.
const PASSWORD_MAX: usize = 256;
/// Uncached hash checks allowed per second per stats page. Each one holds a
/// worker thread for milliseconds; past this budget attempts fail without
/// hashing, so a password-guessing flood cannot starve proxied traffic. A
/// header that verified before is served from the cache and never counts.
const VERIFY_BUDGET: u32 = 16;

/// Standard base64 as RFC 7617 requires, but tolerant of clients that drop
/// the `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Hashes a password as `$6$<16 random salt chars>$<86 chars>` with the
/// default 5000 rounds, exactly as `mkpasswd -m sha-512` does.
pub fn hash_password(password: &str) -> String {
    let mut rng = rand::rng();
    let salt: String = (0..SALT_LEN)
        .map(|_| char::from(SALT_CHARS[rng.random_range(0..SALT_CHARS.len())]))
        .collect();
    hash_password_with_salt(password, &salt)
}

/// Hashes with a given salt, for callers that need the same hash for the
/// same input (deterministic rendering). Characters outside `[./0-9A-Za-z]`
/// are dropped from the salt and only the first 16 are used, as glibc does.
pub fn hash_password_with_salt(password: &str, salt: &str) -> String {
    let salt: String = salt
        .bytes()
        .filter(|b| SALT_CHARS.contains(b))
        .take(SALT_LEN)
        .map(char::from)
        .collect();
    // Default parameters (5000 rounds) are in range, so sha512_crypt's only
    // error (rounds out of range) cannot happen; its base64 output is ASCII.
    match sha_crypt::sha512_crypt_b64(
        password.as_bytes(),
        salt.as_bytes(),
        &sha_crypt::Sha512Params::default(),
    ) {
        Ok(h) => format!("$6${salt}${h}"),
        Err(e) => unreachable!("sha512-crypt with default rounds failed: {e:?}"),
    }
}

/// Whether `password` matches a `$6$` or `$5$` hash, with or without
/// `rounds=N$`. The digests are compared in constant time (by sha-crypt,
/// through `subtle`). A malformed hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$6$") {
        sha_crypt::sha512_check(password, hash).is_ok()
    } else if hash.starts_with("$5$") {
        sha_crypt::sha256_check(password, hash).is_ok()
    } else {
        false
    }
}

/// The users of one stats page, with the headers that proved one of them.
/// Built again on every reload, so a changed password takes effect at once.
pub struct Credentials {
    users: Vec<StatsUser>,
    memo: Mutex<Memo>,
}

/// What [`Credentials`] remembers between requests; the lock is held only to
/// look up or record, never while hashing.
struct Memo {
    /// SHA-256 of an `Authorization` value that verified → index in `users`.
    /// Keyed by a digest so the cache neither keeps passwords in memory nor
    /// compares secret bytes with a short-circuiting `==`.
    accepted: HashMap<[u8; 32], usize>,
    /// Start of the current one-second budget window, and checks spent in it.
    window: Instant,
    spent: u32,
}

impl Credentials {
    pub fn new(users: &[StatsUser]) -> Self {
        Credentials {
            users: users.to_vec(),
            memo: Mutex::new(Memo {
                accepted: HashMap::with_capacity(CACHE_MAX),
                window: Instant::now(),
                spent: 0,
            }),
        }
    }

    /// The user an `Authorization: Basic ...` header proves, if any.
    /// Anything malformed is simply not a proof.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Option<&str> {
        self.check_at(authorization?.as_bytes(), Instant::now())
    }

    fn check_at(&self, raw: &[u8], now: Instant) -> Option<&str> {
        let key: [u8; 32] = Sha256::digest(raw).into();
        if let Some(&i) = self.memo().accepted.get(&key) {
            return Some(self.users[i].name.as_str());
        }

        let (name, password) = parse_basic(raw)?;
        let i = self.users.iter().position(|u| u.name == name)?;
        let ok = match &self.users[i].password {
            Password::Plain(p) => digest_eq(p.as_bytes(), password.as_bytes()),
            Password::Hash(h) => {
                if password.len() > PASSWORD_MAX || !self.spend(now) {
                    return None;
                }
                verify(&password, h)
            }
        };
        if !ok {
            return None;
        }

        let mut memo = self.memo();
        if memo.accepted.len() >= CACHE_MAX {
            // Any victim will do: a still-valid header evicted here only
            // costs one more hash check on its next use.
            if let Some(old) = memo.accepted.keys().next().copied() {
                memo.accepted.remove(&old);
            }
        }
        memo.accepted.insert(key, i);
        Some(self.users[i].name.as_str())
    }

    /// Takes one hash check from this second's budget.
    fn spend(&self, now: Instant) -> bool {
        let mut memo = self.memo();
        if now.saturating_duration_since(memo.window) >= Duration::from_secs(1) {
            memo.window = now;
            memo.spent = 0;
        }
        if memo.spent >= VERIFY_BUDGET {
            return false;
        }
        memo.spent += 1;
        if memo.spent == VERIFY_BUDGET {
            tracing::warn!(
                budget = VERIFY_BUDGET,
                "stats page: too many password checks this second; refusing the rest without checking"
            );
        }
        true
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        // The memo is a cache: whatever a panicking holder left is still
        // consistent enough to use.
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Shows user names only: the hashes and the cache stay out of logs.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "users",
                &self.users.iter().map(|u| &u.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// `Basic <base64(user:password)>` → (user, password). The scheme name is
/// case-insensitive (RFC 9110 §11.1); the user name ends at the first colon
/// (RFC 7617 §2); both must be UTF-8 to be compared with the configuration.
fn parse_basic(raw: &[u8]) -> Option<(String, String)> {
    let raw = raw.trim_ascii();
    let space = raw.iter().position(|&b| b == b' ')?;
    let (scheme, token) = raw.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"Basic") {
        return None;
    }
    let decoded = BASE64.decode(token.trim_ascii()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

/// Compares plain passwords without revealing, through timing, how much of
/// them matched or how long the configured one is.
fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pw: &str) -> HeaderValue {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        HeaderValue::from_str(&format!("Basic {v}")).unwrap()
    }

    fn hashed(name: &str, pw: &str) -> StatsUser {
        StatsUser {
            name: name.into(),
            password: Password::Hash(hash_password(pw)),
        }
    }

    fn cached(c: &Credentials) -> usize {
        c.memo().accepted.len()
    }

    #[test]
    fn known_glibc_vectors_verify() {
        // `mkpasswd -m sha-512 -S saltsaltsaltsalt password`; glibc crypt(3),
        // `openssl passwd -6` and perl's crypt all print this.
        let h = "$6$saltsaltsaltsalt$bcXJ8qxwY5sQ4v8MTl.0B1jeZ0z0JlA9jjmbUoCJZ.1wYXiLTU.q2ILyrDJLm890lyfuF7sWAeli0yjOyFPkf0";
        assert!(verify("password", h));
        assert!(!verify("Password", h));
        assert_eq!(hash_password_with_salt("password", "saltsaltsaltsalt"), h);
        // glibc crypt(3) with explicit rounds, sha-512 and sha-256.
        assert!(verify(
            "password",
            "$6$rounds=1000$abc$vw5PRczzmm7dyJhZWNpaLcy/M.HywGlo.UsELxKYV/ZI4356.iT3zYgbwHVzPSnvkT2lVlMoWMoJdUSLcmUNg."
        ));
        assert!(verify(
            "password",
            "$5$rounds=10000$saltsaltsaltsalt$xyqq3j7rwb5oZLCvp/pHjjs5GpmwrtfCfX4LaqgH3E/"
        ));
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for h in [
            "",
            "password",
            "$1$salt$abc",
            "$6$",
            "$6$salt",
            "$6$salt$",
            "$6$rounds=x$salt$abc",
            "$6$salt$hash$trailing",
            "$6$saltsaltsaltsalt$!!!",
        ] {
            assert!(!verify("password", h), "{h}");
        }
    }

    #[test]
    fn hashes_round_trip_with_a_fresh_16_char_salt() {
        let a = hash_password("s3cret");
        let parts: Vec<&str> = a.split('$').collect();
        assert_eq!(parts[..2], ["", "6"], "{a}");
        assert_eq!(parts[2].len(), 16, "{a}");
        assert!(parts[2].bytes().all(|b| SALT_CHARS.contains(&b)), "{a}");
        assert_eq!(parts[3].len(), 86, "{a}");
        assert!(verify("s3cret", &a) && !verify("s3cret ", &a));
        assert_ne!(a, hash_password("s3cret"));
    }

    #[test]
    fn salts_are_cut_to_glibcs_alphabet_and_length() {
        assert_eq!(
            hash_password_with_salt("password", "salt-salt:saltsaltsaltXYZ"),
            hash_password_with_salt("password", "saltsaltsaltsalt")
        );
    }

    #[test]
    fn basic_auth_accepts_the_user_and_nothing_else() {
        let c = Credentials::new(&[hashed("admin", "pw:with colon")]);
        let good = header("admin", "pw:with colon");
        assert_eq!(c.check(Some(&good)), Some("admin"));
        assert_eq!(c.check(Some(&header("admin", "nope"))), None);
        assert_eq!(c.check(Some(&header("root", "pw:with colon"))), None);
        assert_eq!(c.check(Some(&header("Admin", "pw:with colon"))), None);
        assert_eq!(c.check(None), None);
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_padding_optional() {
        let c = Credentials::new(&[hashed("admin", "pw")]);
        // base64("admin:pw") = "YWRtaW46cHc=".
        for h in [
            "basic YWRtaW46cHc=",
            "BASIC  YWRtaW46cHc= ",
            "Basic YWRtaW46cHc",
        ] {
            assert_eq!(
                c.check(Some(&HeaderValue::from_static(h))),
                Some("admin"),
                "{h}"
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        let c = Credentials::new(&[hashed("admin", "pw")]);
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let cases = [
            String::new(),
            "Basic".into(),
            "Basic ".into(),
            "Basic !!!".into(),
            "Basic YWRtaW46cHc=garbage".into(),
            "Bearer YWRtaW46cHc=".into(),
            "BasicYWRtaW46cHc=".into(),
            format!("Basic {}", b64(b"adminpw")),
            format!("Basic {}", b64(b"admin:\xffpw")),
            format!("Basic {}", b64(b"")),
            format!("Basic {}", b64(b":")),
        ];
        for h in &cases {
            let v = HeaderValue::from_str(h).unwrap();
            assert_eq!(c.check(Some(&v)), None, "{h:?}");
        }
        let binary = HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
        assert_eq!(c.check(Some(&binary)), None);
        assert_eq!(cached(&c), 0);
    }

    #[test]
    fn plain_passwords_compare_exactly() {
        let c = Credentials::new(&[StatsUser {
            name: "admin".into(),
            password: Password::Plain("secret".into()),
        }]);
        assert_eq!(c.check(Some(&header("admin", "secret"))), Some("admin"));
        for pw in ["", "secre", "secret2", "Secret"] {
            assert_eq!(c.check(Some(&header("admin", pw))), None, "{pw}");
        }
    }

    #[test]
    fn successes_are_cached_and_failures_are_not() {
        let c = Credentials::new(&[hashed("admin", "pw"), hashed("ops", "pw2")]);
        let t = Instant::now();
        assert_eq!(c.check_at(header("admin", "nope").as_bytes(), t), None);
        assert_eq!(cached(&c), 0);
        assert_eq!(
            c.check_at(header("admin", "pw").as_bytes(), t),
            Some("admin")
        );
        assert_eq!(c.check_at(header("ops", "pw2").as_bytes(), t), Some("ops"));
        assert_eq!(cached(&c), 2);
        // Exhaust this second's budget: cached headers still pass, anything
        // that would need a hash check does not, even with the right password.
        while c.spend(t) {}
        assert_eq!(
            c.check_at(header("admin", "pw").as_bytes(), t),
            Some("admin")
        );
        assert_eq!(c.check_at(header("ops", "pw2").as_bytes(), t), Some("ops"));
        assert_eq!(c.check_at(b"Basic YWRtaW46cHc", t), None, "unpadded twin");
        let later = t + Duration::from_secs(1);
        assert_eq!(c.check_at(b"Basic YWRtaW46cHc", later), Some("admin"));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = Credentials::new(&[StatsUser {
            name: "admin".into(),
            password: Password::Plain("pw".into()),
        }]);
        // The same credentials, spelled differently each time (extra spaces).
        for n in 0..(CACHE_MAX + 10) {
            let h = format!("Basic{}YWRtaW46cHc=", " ".repeat(n + 1));
            assert_eq!(
                c.check(Some(&HeaderValue::from_str(&h).unwrap())),
                Some("admin")
            );
        }
        assert_eq!(cached(&c), CACHE_MAX);
    }

    #[test]
    fn overlong_passwords_are_refused_without_hashing() {
        let long = "x".repeat(PASSWORD_MAX + 1);
        let c = Credentials::new(&[hashed("admin", &long)]);
        let t = Instant::now();
        assert_eq!(c.check_at(header("admin", &long).as_bytes(), t), None);
        assert_eq!(c.memo().spent, 0);
    }

    #[test]
    fn credentials_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Credentials>();
        let c = Credentials::new(&[hashed("admin", "pw")]);
        assert!(!format!("{c:?}").contains("$6$"));
    }
}
