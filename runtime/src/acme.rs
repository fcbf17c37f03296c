//! ACME HTTP-01 answered by the proxy, statelessly (RFC 8555 §8.3): the
//! key authorization of a challenge is its token, a dot and the account
//! key's JWK thumbprint, so a proxy that knows the thumbprint answers any
//! token without files or coordination. With two LBs behind a VIP, the one
//! the CA reaches answers right. The ACME client itself lives in the CLI.

/// Where a CA fetches an HTTP-01 challenge (RFC 8555 §8.3).
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The base64url alphabet (RFC 4648 §5), which tokens and thumbprints use.
pub fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The body for a challenge `token`: `TOKEN.THUMBPRINT`, or `None` for a
/// path that is no token (empty, too long, or outside base64url), which
/// gets a 404 like any unknown page.
pub fn key_authorization(token: &str, thumbprint: &str) -> Option<String> {
    // RFC 8555 §8.1: a token carries at least 128 bits of entropy in
    // base64url; 256 characters is far beyond what any CA sends.
    if token.is_empty() || token.len() > 256 || !token.bytes().all(is_base64url) {
        return None;
    }
    Some(format!("{token}.{thumbprint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_key_authorization_and_anything_else_none() {
        let t = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
        assert_eq!(
            key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", t).as_deref(),
            Some(
                "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
            )
        );
        for bad in ["", "a/b", "a.b", "../etc", "tok%20en", &"a".repeat(257)] {
            assert_eq!(key_authorization(bad, t), None, "{bad}");
        }
    }
}
