//! The client side towards servers, in the request's own task: [`ServerConn`]
//! (one connection: send a request, read the response head), [`UpstreamBody`]
//! (the response body, decoded as hyper's server side streams it) and
//! [`IdlePool`] (each server's keep-alive connections). It knows nothing of
//! pools, balancing or the client: the request body is any `http_body::Body`.

mod body;
mod conn;
mod idle;

pub use body::{UpstreamBody, is_server_timeout};
pub use conn::{Limits, SendError, Sent, ServerConn};
pub use idle::IdlePool;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use http::header::CONTENT_LENGTH;
    use http::{Method, Response};
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(5),
        upgrade: false,
        max_head: 16384,
    };

    /// A server that reads one request head and answers `reply` raw.
    async fn server(reply: &'static [u8]) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(reply).await.unwrap();
            let _ = s.read(&mut buf).await;
        });
        addr
    }

    async fn get(reply: &'static [u8]) -> (Response<UpstreamBody>, Arc<IdlePool>) {
        let addr = server(reply).await;
        let rt = Arc::new(IdlePool::new());
        let mut conn = ServerConn::connect(addr, Duration::from_secs(1))
            .await
            .unwrap();
        // A request with no body to send: an empty client body stands in.
        let mut head = Vec::new();
        head.extend_from_slice(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        conn.write(&head, LIMITS.timeout).await.unwrap();
        let r = conn
            .response(&Method::GET, rt.clone(), true, LIMITS)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        (r, rt)
    }

    #[tokio::test]
    async fn chunked_wins_over_a_length_and_the_connection_is_reused() {
        let (r, rt) = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n").await;
        assert!(r.headers().get(CONTENT_LENGTH).is_none());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello world");
        assert!(
            rt.take(Duration::from_secs(5)).is_some(),
            "back in the pool"
        );
    }

    #[tokio::test]
    async fn a_close_delimited_body_is_read_to_the_end_and_not_reused() {
        let (r, rt) = get(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it").await;
        let body = r.into_body().collect();
        // The test server waits for more input after replying; closing is
        // ours to detect only when it closes, so bound the wait.
        let body = tokio::time::timeout(Duration::from_millis(200), body).await;
        assert!(body.is_err() || body.unwrap().is_ok());
        assert!(rt.take(Duration::from_secs(5)).is_none(), "never reused");
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_lengths_respected() {
        let (r, rt) = get(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert_eq!(r.status(), 201);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abc");
        assert!(rt.take(Duration::from_secs(5)).is_some());
    }

    /// `timeout server` is inactivity on the body too (paused time: the
    /// 5 s pass at once, and exactly).
    #[tokio::test(start_paused = true)]
    async fn a_body_the_server_stops_sending_ends_in_a_server_timeout() {
        let (r, rt) = get(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789").await;
        let start = tokio::time::Instant::now();
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"0123456789");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(is_server_timeout(&err), "{err}");
        assert_eq!(start.elapsed().as_secs(), LIMITS.timeout.as_secs());
        assert!(rt.take(Duration::from_secs(5)).is_none(), "never reused");
    }

    #[tokio::test]
    async fn chunked_bodies_from_servers_follow_the_same_grammar() {
        let (r, _) =
            get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n")
                .await;
        assert!(r.into_body().collect().await.is_err());
        let (r, _) = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nno colon\r\n\r\n").await;
        assert!(r.into_body().collect().await.is_err());
    }
}
