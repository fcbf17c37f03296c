//! What the fuzz targets in `runtime/fuzz` drive (feature `fuzzing` only):
//! the request [`Scanner`], and the upstream response decoder
//! ([`upstream_response`]) run over a real loopback socket, since
//! `UpstreamBody` reads from a `ServerConn`. Owns no logic of its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::upstream::{IdlePool, Limits, ServerConn};

pub use crate::hygiene::{Reject, Scanner};

/// A response as the proxy decoded it: status, headers, body bytes.
pub type Decoded = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

/// Sends `raw` as a server's whole answer (then closes) and decodes it with
/// the proxy's HTTP/1.1 client, as an answer to `method`. `Err` is the
/// proxy's refusal (a 502 for the client), never a panic.
pub fn upstream_response(method: &Method, raw: &[u8]) -> Result<Decoded, String> {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime for the fuzz target");
    }
    RT.with(|rt| rt.block_on(decode(method, raw)))
}

async fn decode(method: &Method, raw: &[u8]) -> Result<Decoded, String> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let raw = raw.to_vec();
    let server = tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(&raw).await;
            let _ = s.shutdown().await;
        }
    });
    let work = async {
        let conn = ServerConn::connect(addr, Duration::from_secs(1))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let limits = Limits {
            timeout: Duration::from_secs(2),
            upgrade: false,
            max_head: 16 * 1024,
        };
        let resp = conn
            .response(method, Arc::new(IdlePool::new()), false, limits)
            .await
            .map_err(|(e, _)| format!("head: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok((status, headers, body))
    };
    // The server closes after writing, so a decoder that waits longer than
    // this is hung: that is a finding, not a refusal.
    let out = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| panic!("the upstream decoder hung on a closed connection"));
    server.abort();
    out
}
