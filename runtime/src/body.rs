//! Bodies as they cross the proxy. [`RequestBody`] forwards the client's body
//! to the server and counts its bytes; [`ResponseBody`] forwards the server's
//! body (or a body the proxy made) to the client and, when it ends or the
//! client goes away, closes the books on the request through its
//! [`Exchange`](crate::exchange::Exchange).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::upstream::UpstreamBody;

use crate::exchange::Exchange;

/// The client's request body on its way to a server; counts its bytes for
/// the request's [`Exchange`], which adds them to `bin` when it finishes.
#[derive(Debug)]
pub struct RequestBody {
    inner: Incoming,
    /// Shared with the exchange; `None` when the request has no body.
    counted: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// Wraps `inner`; a request with a body gets a counter in `ex`.
    pub(crate) fn new(inner: Incoming, ex: &mut Exchange) -> Self {
        let counted = (!inner.is_end_stream()).then(|| {
            let c = Arc::new(AtomicU64::new(0));
            ex.body_in = Some(c.clone());
            c
        });
        RequestBody { inner, counted }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
            && let Some(c) = &this.counted
        {
            c.fetch_add(d.len() as u64, Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Debug)]
enum Inner {
    Upstream(UpstreamBody),
    Full(Option<Bytes>),
}

/// The body the client receives.
#[derive(Debug)]
pub struct ResponseBody {
    inner: Inner,
    /// Finishes the request when the body ends or is dropped.
    exchange: Option<Exchange>,
}

impl ResponseBody {
    pub(crate) fn upstream(inner: UpstreamBody, exchange: Exchange) -> Self {
        ResponseBody {
            inner: Inner::Upstream(inner),
            exchange: Some(exchange),
        }
    }

    pub(crate) fn full(data: Bytes, exchange: Option<Exchange>) -> Self {
        let mut exchange = exchange;
        if let Some(ex) = &mut exchange {
            ex.add_bytes_out(data.len() as u64);
        }
        ResponseBody {
            inner: Inner::Full(Some(data).filter(|d| !d.is_empty())),
            exchange,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Full(data) => {
                let r = data.take().map(|d| Ok(Frame::data(d)));
                if r.is_none()
                    && let Some(ex) = this.exchange.take()
                {
                    ex.finish(true);
                }
                Poll::Ready(r)
            }
            Inner::Upstream(body) => {
                let r = Pin::new(&mut *body).poll_frame(cx);
                match &r {
                    Poll::Ready(Some(Ok(f))) => {
                        if let (Some(d), Some(ex)) = (f.data_ref(), this.exchange.as_mut()) {
                            ex.add_bytes_out(d.len() as u64);
                        }
                        // hyper stops polling a body that says it has ended,
                        // so finish now rather than wait for a `None`.
                        if body.is_end_stream()
                            && let Some(ex) = this.exchange.take()
                        {
                            ex.finish(true);
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(ex) = this.exchange.take() {
                            ex.finish(true);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        if let Some(mut ex) = this.exchange.take() {
                            ex.server_aborted(crate::upstream::is_server_timeout(e));
                            ex.finish(false);
                        }
                    }
                    Poll::Pending => {}
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(d) => d.is_none(),
            Inner::Upstream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Upstream(b) => b.size_hint(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped before its end: the client went away (or hyper gave up on
        // the connection). The request still gets counted and logged.
        if let Some(ex) = self.exchange.take() {
            let ended = match &self.inner {
                Inner::Upstream(b) => b.is_end_stream(),
                Inner::Full(d) => d.is_none(),
            };
            ex.finish(ended);
        }
    }
}
