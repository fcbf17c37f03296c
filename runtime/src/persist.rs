//! Cookie persistence with HAProxy's `cookie NAME insert indirect nocache`
//! semantics: finding the persistence cookie in a request, removing it before
//! the server sees it, removing a server's own cookie of that name, and
//! deciding whether a response is cacheable (so that `nocache` can mark it
//! `Cache-Control: private` when it carries an inserted cookie).

use http::header::{CACHE_CONTROL, COOKIE, EXPIRES, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method};

/// The value of cookie `name` in the request's Cookie header(s), if any.
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    for v in headers.get_all(COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            let pair = pair.trim_start_matches([' ', '\t']);
            if let Some(rest) = pair.strip_prefix(name)
                && let Some(value) = rest.strip_prefix('=')
            {
                return Some(value.trim_end_matches([' ', '\t']));
            }
        }
    }
    None
}

/// Removes cookie `name` from the request, keeping the others as they were.
/// A Cookie header left empty is removed.
pub fn strip(headers: &mut HeaderMap, name: &str) {
    if !headers.get_all(COOKIE).iter().any(|v| contains(v, name)) {
        return;
    }
    let old: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    headers.remove(COOKIE);
    for v in old {
        if !contains(&v, name) {
            headers.append(COOKIE, v);
            continue;
        }
        let Ok(s) = v.to_str() else { continue };
        let kept: Vec<&str> = s
            .split(';')
            .map(|p| p.trim_matches([' ', '\t']))
            .filter(|p| !p.is_empty() && !is_named(p, name))
            .collect();
        if !kept.is_empty()
            && let Ok(nv) = HeaderValue::from_str(&kept.join("; "))
        {
            headers.append(COOKIE, nv);
        }
    }
}

fn is_named(pair: &str, name: &str) -> bool {
    pair.strip_prefix(name).is_some_and(|r| r.starts_with('='))
}

fn contains(v: &HeaderValue, name: &str) -> bool {
    v.to_str().is_ok_and(|s| {
        s.split(';')
            .any(|p| is_named(p.trim_start_matches([' ', '\t']), name))
    })
}

/// In insert mode the proxy owns cookie `name`: a server's own Set-Cookie of
/// that name is removed (HAProxy does the same unless `preserve`).
/// Returns whether one was removed.
pub fn strip_set_cookie(headers: &mut HeaderMap, prefix: &str) -> bool {
    if !headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(prefix.as_bytes()))
    {
        return false;
    }
    let old: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    for v in old {
        if !v.as_bytes().starts_with(prefix.as_bytes()) {
            headers.append(SET_COOKIE, v);
        }
    }
    true
}

/// Whether a shared cache could store this response, as HAProxy 2.6 judges
/// it for `nocache` (measured, see shared/reference): a GET/HEAD answered
/// with a cacheable status and an explicit freshness (`public`, `max-age`,
/// `s-maxage` or `Expires`), and no `private`, `no-cache` or `no-store`.
pub fn is_cacheable(method: &Method, status: u16, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    // RFC 9110 §15.1: statuses cacheable by default.
    if !matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    ) {
        return false;
    }
    let mut fresh = headers.contains_key(EXPIRES);
    for v in headers.get_all(CACHE_CONTROL) {
        let Ok(s) = v.to_str() else { continue };
        for d in s.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            let (k, val) = d
                .split_once('=')
                .map_or((d.as_str(), ""), |(k, v)| (k.trim(), v.trim()));
            match k {
                "private" | "no-cache" | "no-store" => return false,
                "max-age" | "s-maxage" => {
                    if val.trim_matches('"') == "0" {
                        return false;
                    }
                    fresh = true;
                }
                "public" => fresh = true,
                _ => {}
            }
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn finds_the_cookie_among_others() {
        let h = headers(&[("cookie", "PHPSESSID=abc; SERVERID=w2")]);
        assert_eq!(find(&h, "SERVERID"), Some("w2"));
        assert_eq!(find(&h, "SERVER"), None);
        let h = headers(&[("cookie", "a=1"), ("cookie", "SERVERID=w1")]);
        assert_eq!(find(&h, "SERVERID"), Some("w1"));
    }

    #[test]
    fn stripping_leaves_other_cookies_untouched() {
        let mut h = headers(&[("cookie", "PHPSESSID=abc; SERVERID=w2")]);
        strip(&mut h, "SERVERID");
        assert_eq!(h.get("cookie").unwrap(), "PHPSESSID=abc");
        let mut h = headers(&[("cookie", "SERVERID=w2")]);
        strip(&mut h, "SERVERID");
        assert!(h.get("cookie").is_none());
        let mut h = headers(&[("cookie", "SERVERIDX=1; a=b")]);
        strip(&mut h, "SERVERID");
        assert_eq!(h.get("cookie").unwrap(), "SERVERIDX=1; a=b");
    }

    #[test]
    fn cacheability_matches_haproxy_measurements() {
        let get = Method::GET;
        assert!(is_cacheable(
            &get,
            200,
            &headers(&[("cache-control", "public,max-age=60")])
        ));
        assert!(is_cacheable(
            &get,
            200,
            &headers(&[("cache-control", "max-age=60")])
        ));
        assert!(!is_cacheable(
            &get,
            200,
            &headers(&[("cache-control", "no-cache")])
        ));
        assert!(!is_cacheable(&get, 200, &HeaderMap::new()));
        assert!(!is_cacheable(
            &Method::POST,
            200,
            &headers(&[("cache-control", "max-age=60")])
        ));
    }

    #[test]
    fn a_servers_own_persistence_cookie_is_removed() {
        let mut h = headers(&[("set-cookie", "SERVERID=x; path=/"), ("set-cookie", "a=b")]);
        assert!(strip_set_cookie(&mut h, "SERVERID="));
        assert_eq!(h.get_all("set-cookie").iter().count(), 1);
    }
}
