//! HTTP Basic authentication for the stats page, against crypt(3) password
//! hashes (`$6$` sha-512, `$5$` sha-256, as `mkpasswd` writes them). A hash
//! costs milliseconds by design, and monitoring polls the stats page, so
//! headers that verified once are remembered (never failures).

use std::collections::HashSet;
use std::sync::Mutex;

use base64::Engine;
use http::HeaderValue;
use rand::Rng;

use crate::config::{Password, StatsUser};

const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Accepted `Authorization` values remembered; past it the cache restarts.
const CACHE_MAX: usize = 64;

/// Hashes a password as `$6$<16 random salt chars>$...` (5000 rounds).
pub fn hash_password(password: &str) -> String {
    let mut rng = rand::rng();
    let salt: String = (0..16)
        .map(|_| SALT_CHARS[rng.random_range(0..SALT_CHARS.len())] as char)
        .collect();
    hash_password_with_salt(password, &salt)
}

/// Hashes with a given salt (up to 16 characters of `[./0-9A-Za-z]`), for
/// callers that need the same hash for the same input (deterministic
/// rendering). Other characters are dropped from the salt.
pub fn hash_password_with_salt(password: &str, salt: &str) -> String {
    let salt: String = salt
        .bytes()
        .filter(|b| SALT_CHARS.contains(b))
        .take(16)
        .map(char::from)
        .collect();
    // 5000 rounds is the crate's default and always valid, so this cannot fail.
    let params =
        sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT).expect("default rounds are valid");
    match sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params) {
        Ok(h) => format!("$6${salt}${h}"),
        Err(_) => String::new(),
    }
}

/// Whether `password` matches a `$6$` or `$5$` hash (with `rounds=N$` too).
pub fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$6$") {
        sha_crypt::sha512_check(password, hash).is_ok()
    } else if hash.starts_with("$5$") {
        sha_crypt::sha256_check(password, hash).is_ok()
    } else {
        false
    }
}

/// The users of one stats page.
#[derive(Debug)]
pub struct Credentials {
    users: Vec<StatsUser>,
    /// Exact `Authorization` header values that verified, with the user.
    accepted: Mutex<HashSet<(Vec<u8>, String)>>,
}

impl Credentials {
    pub fn new(users: &[StatsUser]) -> Self {
        Credentials {
            users: users.to_vec(),
            accepted: Mutex::new(HashSet::new()),
        }
    }

    /// The user an `Authorization: Basic ...` header proves, if any.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Option<&str> {
        let raw = authorization?.as_bytes();
        {
            let cache = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, user)) = cache.iter().find(|(h, _)| h.as_slice() == raw) {
                return self
                    .users
                    .iter()
                    .find(|u| &u.name == user)
                    .map(|u| u.name.as_str());
            }
        }
        let b64 = raw
            .strip_prefix(b"Basic ")
            .or_else(|| raw.strip_prefix(b"basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim_ascii())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (name, password) = text.split_once(':')?;
        let user = self.users.iter().find(|u| u.name == name)?;
        let ok = match &user.password {
            Password::Hash(h) => verify(password, h),
            Password::Plain(p) => constant_time_eq(p.as_bytes(), password.as_bytes()),
        };
        if !ok {
            return None;
        }
        let mut cache = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert((raw.to_vec(), user.name.clone()));
        Some(user.name.as_str())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pw: &str) -> HeaderValue {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        HeaderValue::from_str(&format!("Basic {v}")).unwrap()
    }

    #[test]
    fn a_known_glibc_vector_verifies() {
        // `openssl passwd -6 -salt saltsaltsaltsalt password` (glibc crypt agrees).
        let h = "$6$saltsaltsaltsalt$bcXJ8qxwY5sQ4v8MTl.0B1jeZ0z0JlA9jjmbUoCJZ.1wYXiLTU.q2ILyrDJLm890lyfuF7sWAeli0yjOyFPkf0";
        assert!(verify("password", h));
        assert!(!verify("Password", h));
        assert_eq!(hash_password_with_salt("password", "saltsaltsaltsalt"), h);
    }

    #[test]
    fn hashes_round_trip_and_salts_differ() {
        let a = hash_password("s3cret");
        assert!(a.starts_with("$6$") && verify("s3cret", &a));
        assert_ne!(a, hash_password("s3cret"));
    }

    #[test]
    fn basic_auth_accepts_the_user_and_nothing_else() {
        let users = [StatsUser {
            name: "admin".into(),
            password: Password::Hash(hash_password("pw")),
        }];
        let c = Credentials::new(&users);
        assert_eq!(c.check(Some(&header("admin", "pw"))), Some("admin"));
        assert_eq!(
            c.check(Some(&header("admin", "pw"))),
            Some("admin"),
            "cached"
        );
        assert_eq!(c.check(Some(&header("admin", "nope"))), None);
        assert_eq!(c.check(Some(&header("root", "pw"))), None);
        assert_eq!(c.check(Some(&HeaderValue::from_static("Basic !!!"))), None);
        assert_eq!(c.check(Some(&HeaderValue::from_static("Bearer x"))), None);
        assert_eq!(c.check(None), None);
    }
}
