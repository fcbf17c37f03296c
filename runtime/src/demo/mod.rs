//! `vakt demo-web`: a tiny shop used by the local demo and the tests. Every
//! answer carries `X-Served-By: <name>`.
//!
//! - `GET /`: the shop's page (`pages`): which server answered, a catalogue
//!   with "Add to cart" buttons, links to the cart and the other pages.
//!   `GET /cart/view`: the cart as a page. `GET /health`: `OK` (200), or 503
//!   after `POST /health/fail` until `POST /health/ok` (never the
//!   database's state: a DB outage must not take every web host out).
//! - `POST /cart?item=X`, `GET /cart`: a cart per `DEMOSESSID` session, kept
//!   by the `carts::Store`: this process's memory (a session that bounces
//!   between servers loses its cart: why persistence matters), or with
//!   `--config` naming a `[db]` (`config`), the cluster's MariaDB, where
//!   every web host sees it. Answers are JSON; a browser's form post
//!   (`Accept: text/html`) is sent on to `/cart/view` instead (303).
//! - `POST /order`: the cart becomes an order (201, `Location: /order/ID`,
//!   only after the database committed it); `GET /order/ID`: that order,
//!   to the session that placed it. A database that fails or does not answer
//!   in time gives 503 with the reason, and the next request tries again.
//! - `/echo` (any method): the request as received, as JSON (method, target,
//!   version, headers in order, body length). Query parameters shape the
//!   answer: `status=NNN`, `cache-control=...`, `set-cookie=...`,
//!   `delay_ms=N` (≤ 60 s), `bytes=N` (a body of N bytes, ≤ 10 MiB).
//!
//! `vakt demo-db` ([`run_db_blocking`]) stands in for the cluster's database.

mod carts;
mod config;
mod pages;

pub use carts::{Order, Store, StoreError};
pub use config::{ConfigError, DbConfig, DemoConfig};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::net::TcpListener;

const MAX_BODY: usize = 1 << 20;

struct Shop {
    name: String,
    served_by: HeaderValue,
    healthy: AtomicBool,
    store: Store,
}

/// Serves with carts in memory until `shutdown` resolves (the tests' shop).
pub async fn run(
    listener: TcpListener,
    name: String,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve(listener, name, Store::memory(), shutdown).await
}

/// Serves with `store` until `shutdown` resolves, then lets requests in
/// flight finish.
pub async fn serve(
    listener: TcpListener,
    name: String,
    store: Store,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shop = Arc::new(Shop {
        served_by: HeaderValue::from_str(&name)
            .unwrap_or_else(|_| HeaderValue::from_static("demo")),
        name,
        healthy: AtomicBool::new(std::env::var_os("VAKT_DEMO_HEALTH_FAIL").is_none()),
        store,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let shop = shop.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shop = shop.clone();
                async move { Ok::<_, Infallible>(handle(&shop, req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    drop(listener);
    // Give connections a moment to finish their current request.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stop_tx.receiver_count() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Why `vakt demo-web` could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// `vakt demo-web --bind ADDR --name NAME [--config FILE]
/// [--db-password-file FILE]`: serves until SIGTERM or SIGINT. The password
/// file given on the command line (systemd's credential) wins over the
/// config's `password_file`.
pub fn run_blocking(
    bind: SocketAddr,
    name: String,
    config: Option<&Path>,
    password_file: Option<&Path>,
) -> Result<(), DemoError> {
    let config = match config {
        Some(p) => DemoConfig::load(p)?,
        None => DemoConfig::default(),
    };
    let password = match &config.db {
        Some(db) => Some(config::read_password(
            password_file.unwrap_or(&db.password_file),
        )?),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // The pool needs the runtime: made inside it.
        let store = match (&config.db, password) {
            (Some(db), Some(pw)) => Store::MariaDb(carts::MariaDb::new(db, pw)),
            _ => Store::memory(),
        };
        let listener = TcpListener::bind(bind).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("demo-web cannot listen on {bind}: {e}"))
        })?;
        serve(listener, name, store, async {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
                }
                _ => std::future::pending().await,
            }
        })
        .await?;
        Ok(())
    })
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
    })
}

/// Minimal %-decoding for query values (`%20`, `+`).
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn session(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(';'))
        .find_map(|p| {
            p.trim()
                .strip_prefix("DEMOSESSID=")
                .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_string)
        })
}

fn reply(
    shop: &Shop,
    status: StatusCode,
    ctype: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert("x-served-by", shop.served_by.clone());
    r
}

async fn handle(shop: &Shop, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let q = req.uri().query().unwrap_or("").to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/health") => {
            if shop.healthy.load(Relaxed) {
                reply(shop, StatusCode::OK, "text/plain", "OK\n")
            } else {
                reply(
                    shop,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "failing on purpose\n",
                )
            }
        }
        (Method::POST, "/health/fail") | (Method::POST, "/health/ok") => {
            shop.healthy.store(path.ends_with("/ok"), Relaxed);
            reply(shop, StatusCode::OK, "text/plain", "done\n")
        }
        (_, "/echo") => echo(shop, req, &q).await,
        (Method::GET | Method::HEAD, "/") => {
            let (sid, new) = sid_or_new(&req);
            let items = match shop.store.cart(&sid).await {
                Ok(items) => items,
                Err(e) => return unavailable(shop, &e),
            };
            let body = pages::shop(&shop.name, items.len(), shop.store.describe());
            with_session(
                reply(shop, StatusCode::OK, "text/html; charset=utf-8", body),
                &sid,
                new,
            )
        }
        (Method::GET | Method::HEAD, "/cart/view") => {
            let (sid, new) = sid_or_new(&req);
            let items = match shop.store.cart(&sid).await {
                Ok(items) => items,
                Err(e) => return unavailable(shop, &e),
            };
            let body = pages::cart(&shop.name, &items);
            with_session(
                reply(shop, StatusCode::OK, "text/html; charset=utf-8", body),
                &sid,
                new,
            )
        }
        (Method::GET, "/cart") => {
            let (sid, new) = sid_or_new(&req);
            match shop.store.cart(&sid).await {
                Ok(items) => with_session(cart_json(shop, &items), &sid, new),
                Err(e) => unavailable(shop, &e),
            }
        }
        (Method::POST, "/cart") => {
            let Some(item) = query(&q, "item")
                .map(decode)
                .filter(|i| !i.is_empty() && i.len() <= 64 && i.chars().all(|c| !c.is_control()))
            else {
                return reply(
                    shop,
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    "POST /cart?item=NAME (1-64 printable characters)\n",
                );
            };
            let (sid, new) = sid_or_new(&req);
            let items = match shop.store.add(&sid, &item).await {
                Ok(items) => items,
                Err(e) => return unavailable(shop, &e),
            };
            if wants_html(&req) {
                // Post/redirect/get: reloading the cart page adds nothing.
                return with_session(see_other(shop, "/cart/view"), &sid, new);
            }
            with_session(cart_json(shop, &items), &sid, new)
        }
        (Method::POST, "/order") => {
            let Some(sid) = session(&req) else {
                return reply(
                    shop,
                    StatusCode::CONFLICT,
                    "text/plain",
                    "no cart to order: add items first (POST /cart?item=NAME)\n",
                );
            };
            match shop.store.place(&sid).await {
                Ok(Some(order)) => {
                    let location = format!("/order/{}", order.id);
                    if wants_html(&req) {
                        return see_other(shop, &location);
                    }
                    let mut r = order_json(shop, StatusCode::CREATED, &order);
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        r.headers_mut().insert(LOCATION, v);
                    }
                    r
                }
                Ok(None) => reply(
                    shop,
                    StatusCode::CONFLICT,
                    "text/plain",
                    "the cart is empty: add items first (POST /cart?item=NAME)\n",
                ),
                Err(e) => unavailable(shop, &e),
            }
        }
        (Method::GET | Method::HEAD, p) if p.starts_with("/order/") => {
            let id = p["/order/".len()..].parse::<u64>().ok();
            let (Some(id), Some(sid)) = (id, session(&req)) else {
                return reply(shop, StatusCode::NOT_FOUND, "text/plain", "no such order\n");
            };
            match shop.store.order(&sid, id).await {
                Ok(Some(order)) => order_json(shop, StatusCode::OK, &order),
                Ok(None) => reply(shop, StatusCode::NOT_FOUND, "text/plain", "no such order\n"),
                Err(e) => unavailable(shop, &e),
            }
        }
        _ => reply(shop, StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// 503 for a database that failed or did not answer; the process log gets
/// the same line, with the time.
fn unavailable(shop: &Shop, e: &StoreError) -> Response<Full<Bytes>> {
    eprintln!(
        "{} {}: {e}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        shop.name
    );
    let mut r = reply(
        shop,
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain",
        format!("{e}: nothing was changed; try again in a moment\n"),
    );
    r.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

fn see_other(shop: &Shop, location: &str) -> Response<Full<Bytes>> {
    let mut r = reply(
        shop,
        StatusCode::SEE_OTHER,
        "text/plain",
        format!("see {location}\n"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// A browser navigating (a form post) asks for HTML first; curl and API
/// clients send `*/*` or `application/json`.
fn wants_html(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn sid_or_new(req: &Request<Incoming>) -> (String, bool) {
    match session(req) {
        Some(s) => (s, false),
        None => {
            let mut rng = rand::rng();
            (
                (0..32)
                    .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                    .collect(),
                true,
            )
        }
    }
}

fn with_session(mut r: Response<Full<Bytes>>, sid: &str, new: bool) -> Response<Full<Bytes>> {
    if new && let Ok(v) = HeaderValue::from_str(&format!("DEMOSESSID={sid}; Path=/; HttpOnly")) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

fn cart_json(shop: &Shop, items: &[String]) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "server": shop.name, "items": items }).to_string();
    reply(shop, StatusCode::OK, "application/json", body)
}

fn order_json(shop: &Shop, status: StatusCode, order: &Order) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "server": shop.name, "order": order.id, "items": order.items })
        .to_string();
    reply(shop, status, "application/json", body)
}

async fn echo(shop: &Shop, req: Request<Incoming>, q: &str) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body_len = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => {
            return reply(
                shop,
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body over 1 MiB\n",
            );
        }
    };
    if let Some(ms) = query(q, "delay_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            [
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let mut body = serde_json::json!({
        "server": shop.name,
        "method": parts.method.as_str(),
        "target": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_len": body_len,
    })
    .to_string()
    .into_bytes();
    if let Some(n) = query(q, "bytes").and_then(|v| v.parse::<usize>().ok()) {
        body = vec![b'x'; n.min(10 << 20)];
    }
    let status = query(q, "status")
        .and_then(|s| s.parse().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut r = reply(shop, status, "application/json", body);
    if let Some(cc) = query(q, "cache-control").map(decode)
        && let Ok(v) = HeaderValue::from_str(&cc)
    {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    if let Some(sc) = query(q, "set-cookie").map(decode)
        && let Ok(v) = HeaderValue::from_str(&sc)
    {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// `vakt demo-db`: a stand-in for the database of the demo cluster. It
/// listens on the db port so that reachability and placement checks have
/// something real to find, greets each connection with one line and closes
/// it. It stores nothing. Runs until SIGTERM/SIGINT.
pub fn run_db_blocking(bind: SocketAddr, name: String) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(bind).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("demo-db cannot listen on {bind}: {e}"))
        })?;
        let greeting = format!("vakt demo-db {name}: a stand-in database; nothing is stored\n");
        let serve = async {
            loop {
                if let Ok((mut s, _)) = listener.accept().await {
                    let g = greeting.clone();
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let _ = s.write_all(g.as_bytes()).await;
                        let _ = s.shutdown().await;
                    });
                }
            }
        };
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            () = serve => {},
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(addr: SocketAddr, req: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn carts_are_per_session_and_echo_keeps_repeated_headers() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run(l, "web01".into(), async {
            let _ = rx.await;
        }));
        let sid = "0123456789abcdef0123456789abcdef";
        let add = exchange(addr, &format!("POST /cart?item=apple HTTP/1.1\r\nHost: t\r\nCookie: DEMOSESSID={sid}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")).await;
        assert!(
            add.contains("x-served-by: web01") && add.contains("\"items\":[\"apple\"]"),
            "{add}"
        );
        let other = exchange(
            addr,
            "GET /cart HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            other.contains("\"items\":[]") && other.contains("set-cookie: DEMOSESSID="),
            "{other}"
        );
        let echo = exchange(addr, "GET /echo?status=201 HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\n").await;
        assert!(echo.starts_with("HTTP/1.1 201"), "{echo}");
        assert!(echo.contains("[\"x-a\",\"1\"],[\"x-a\",\"2\"]"), "{echo}");
        let fail = exchange(addr, "POST /health/fail HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
        assert!(fail.starts_with("HTTP/1.1 200"));
        let health = exchange(
            addr,
            "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(health.starts_with("HTTP/1.1 503"), "{health}");
        let _ = tx.send(());
        server.await.unwrap().unwrap();
    }
}
