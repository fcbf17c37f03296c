//! The Prometheus page: a [`Snapshot`] rendered in the text exposition
//! format with the names, types, labels and help texts of HAProxy 2.6's
//! built-in exporter (`http-request use-service prometheus-exporter`), so
//! dashboards and alerts written for HAProxy read vakt unchanged. A family
//! vakt has no data for is left out, never sent as zero; rendering happens
//! only when scraped (the data path keeps its atomics). The proxy serves it
//! and checks credentials; this module only renders.

use std::fmt::Write as _;

use crate::stats::{BackendRow, FrontendRow, RESPONSE_CLASSES, ServerRow, Snapshot};

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}
use Kind::{Counter, Gauge};

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Gauge => "gauge",
            Counter => "counter",
        }
    }
}

/// One sample's value as a row gives it.
enum V {
    N(u64),
    /// Milliseconds, written as seconds (HAProxy's `_seconds` families).
    Ms(u64),
    /// Not applicable to this row (HAProxy writes NaN): no sample.
    Skip,
}

/// A family whose samples have only the row's own labels.
struct Family<R: 'static> {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&R) -> V,
}

const fn fam<R>(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&R) -> V,
) -> Family<R> {
    Family {
        name,
        kind,
        help,
        value,
    }
}

/// HAProxy's server states (`haproxy_server_status{state}`), in its order.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// HAProxy's check results (`haproxy_server_check_status{state}`), in its
/// order; vakt produces L4OK, L4CON, L4TOUT, L7OK, L7STS, L7TOUT, L7RSP.
const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

/// The exporter state of a server: the first word of its stats status
/// ("UP 1/3" is UP), and UP for an unchecked server, as HAProxy reports it.
fn server_state(status: &str) -> &'static str {
    match status.split(' ').next().unwrap_or_default() {
        "DOWN" => "DOWN",
        "MAINT" => "MAINT",
        "DRAIN" => "DRAIN",
        _ => "UP",
    }
}

static FRONTEND: &[Family<FrontendRow>] = &[
    fam(
        "haproxy_frontend_current_sessions",
        Gauge,
        "Number of current sessions on the frontend, backend or server",
        |r| V::N(r.counters.scur),
    ),
    fam(
        "haproxy_frontend_max_sessions",
        Gauge,
        "Highest value of current sessions encountered since process started",
        |r| V::N(r.counters.smax),
    ),
    fam(
        "haproxy_frontend_limit_sessions",
        Gauge,
        "Frontend/listener/server's maxconn, backend's fullconn",
        |r| V::N(r.counters.slim),
    ),
    fam(
        "haproxy_frontend_sessions_total",
        Counter,
        "Total number of sessions since process started",
        |r| V::N(r.counters.stot),
    ),
    fam(
        "haproxy_frontend_bytes_in_total",
        Counter,
        "Total number of request bytes since process started",
        |r| V::N(r.counters.bin),
    ),
    fam(
        "haproxy_frontend_bytes_out_total",
        Counter,
        "Total number of response bytes since process started",
        |r| V::N(r.counters.bout),
    ),
    fam(
        "haproxy_frontend_request_errors_total",
        Counter,
        "Total number of invalid requests since process started",
        |r| V::N(r.counters.ereq),
    ),
    fam(
        "haproxy_frontend_connections_total",
        Counter,
        "Total number of new connections accepted on this frontend since the worker process started",
        |r| V::N(r.counters.stot),
    ),
    fam(
        "haproxy_frontend_http_requests_total",
        Counter,
        "Total number of HTTP requests processed by this object since the worker process started",
        |r| V::N(r.counters.req_tot),
    ),
];

static BACKEND: &[Family<BackendRow>] = &[
    fam(
        "haproxy_backend_current_queue",
        Gauge,
        "Number of current queued connections",
        |r| V::N(r.counters.qcur),
    ),
    fam(
        "haproxy_backend_max_queue",
        Gauge,
        "Highest value of queued connections encountered since process started",
        |r| V::N(r.counters.qmax),
    ),
    fam(
        "haproxy_backend_current_sessions",
        Gauge,
        "Number of current sessions on the frontend, backend or server",
        |r| V::N(r.counters.scur),
    ),
    fam(
        "haproxy_backend_max_sessions",
        Gauge,
        "Highest value of current sessions encountered since process started",
        |r| V::N(r.counters.smax),
    ),
    fam(
        "haproxy_backend_sessions_total",
        Counter,
        "Total number of sessions since process started",
        |r| V::N(r.counters.stot),
    ),
    fam(
        "haproxy_backend_bytes_in_total",
        Counter,
        "Total number of request bytes since process started",
        |r| V::N(r.counters.bin),
    ),
    fam(
        "haproxy_backend_bytes_out_total",
        Counter,
        "Total number of response bytes since process started",
        |r| V::N(r.counters.bout),
    ),
    fam(
        "haproxy_backend_connection_errors_total",
        Counter,
        "Total number of failed connections to server since the worker process started",
        |r| V::N(r.counters.econ),
    ),
    fam(
        "haproxy_backend_response_errors_total",
        Counter,
        "Total number of invalid responses since the worker process started",
        |r| V::N(r.counters.eresp),
    ),
    fam(
        "haproxy_backend_retry_warnings_total",
        Counter,
        "Total number of server connection retries since the worker process started",
        |r| V::N(r.counters.wretr),
    ),
    fam(
        "haproxy_backend_redispatch_warnings_total",
        Counter,
        "Total number of server redispatches due to connection failures since the worker process started",
        |r| V::N(r.counters.wredis),
    ),
    fam(
        "haproxy_backend_weight",
        Gauge,
        "Server's effective weight, or sum of active servers' effective weights for a backend",
        |r| V::N(r.weight.into()),
    ),
    fam(
        "haproxy_backend_active_servers",
        Gauge,
        "Total number of active UP servers with a non-zero weight",
        |r| V::N(r.act.into()),
    ),
    fam(
        "haproxy_backend_backup_servers",
        Gauge,
        "Total number of backup UP servers with a non-zero weight",
        |r| V::N(r.bck.into()),
    ),
    fam(
        "haproxy_backend_check_up_down_total",
        Counter,
        "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
        |r| V::N(r.chkdown),
    ),
    fam(
        "haproxy_backend_check_last_change_seconds",
        Gauge,
        "How long ago the last server state changed, in seconds",
        |r| V::N(r.lastchg),
    ),
    fam(
        "haproxy_backend_loadbalanced_total",
        Counter,
        "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
        |r| V::N(r.counters.stot),
    ),
    fam(
        "haproxy_backend_queue_time_average_seconds",
        Gauge,
        "Avg. queue time for last 1024 successful connections.",
        |r| V::Ms(r.counters.qtime),
    ),
    fam(
        "haproxy_backend_connect_time_average_seconds",
        Gauge,
        "Avg. connect time for last 1024 successful connections.",
        |r| V::Ms(r.counters.ctime),
    ),
    fam(
        "haproxy_backend_response_time_average_seconds",
        Gauge,
        "Avg. response time for last 1024 successful connections.",
        |r| V::Ms(r.counters.rtime),
    ),
    fam(
        "haproxy_backend_total_time_average_seconds",
        Gauge,
        "Avg. total time for last 1024 successful connections.",
        |r| V::Ms(r.counters.ttime),
    ),
    fam(
        "haproxy_backend_max_queue_time_seconds",
        Gauge,
        "Maximum observed time spent in the queue",
        |r| V::Ms(r.counters.qtime_max),
    ),
    fam(
        "haproxy_backend_max_connect_time_seconds",
        Gauge,
        "Maximum observed time spent waiting for a connection to complete",
        |r| V::Ms(r.counters.ctime_max),
    ),
    fam(
        "haproxy_backend_max_response_time_seconds",
        Gauge,
        "Maximum observed time spent waiting for a server response",
        |r| V::Ms(r.counters.rtime_max),
    ),
    fam(
        "haproxy_backend_max_total_time_seconds",
        Gauge,
        "Maximum observed total request+response time (request+queue+connect+response+processing)",
        |r| V::Ms(r.counters.ttime_max),
    ),
    fam(
        "haproxy_backend_http_requests_total",
        Counter,
        "Total number of HTTP requests processed by this object since the worker process started",
        |r| V::N(r.counters.req_tot),
    ),
    fam(
        "haproxy_backend_uweight",
        Gauge,
        "Server's user weight, or sum of active servers' user weights for a backend",
        |r| V::N(r.weight.into()),
    ),
];

static SERVER: &[Family<ServerRow>] = &[
    fam(
        "haproxy_server_current_queue",
        Gauge,
        "Number of current queued connections",
        |r| V::N(r.counters.qcur),
    ),
    fam(
        "haproxy_server_max_queue",
        Gauge,
        "Highest value of queued connections encountered since process started",
        |r| V::N(r.counters.qmax),
    ),
    fam(
        "haproxy_server_current_sessions",
        Gauge,
        "Number of current sessions on the frontend, backend or server",
        |r| V::N(r.counters.scur),
    ),
    fam(
        "haproxy_server_max_sessions",
        Gauge,
        "Highest value of current sessions encountered since process started",
        |r| V::N(r.counters.smax),
    ),
    fam(
        "haproxy_server_limit_sessions",
        Gauge,
        "Frontend/listener/server's maxconn, backend's fullconn",
        |r| match r.counters.slim {
            0 => V::Skip,
            n => V::N(n),
        },
    ),
    fam(
        "haproxy_server_sessions_total",
        Counter,
        "Total number of sessions since process started",
        |r| V::N(r.counters.stot),
    ),
    fam(
        "haproxy_server_bytes_in_total",
        Counter,
        "Total number of request bytes since process started",
        |r| V::N(r.counters.bin),
    ),
    fam(
        "haproxy_server_bytes_out_total",
        Counter,
        "Total number of response bytes since process started",
        |r| V::N(r.counters.bout),
    ),
    fam(
        "haproxy_server_connection_errors_total",
        Counter,
        "Total number of failed connections to server since the worker process started",
        |r| V::N(r.counters.econ),
    ),
    fam(
        "haproxy_server_response_errors_total",
        Counter,
        "Total number of invalid responses since the worker process started",
        |r| V::N(r.counters.eresp),
    ),
    fam(
        "haproxy_server_retry_warnings_total",
        Counter,
        "Total number of server connection retries since the worker process started",
        |r| V::N(r.counters.wretr),
    ),
    fam(
        "haproxy_server_redispatch_warnings_total",
        Counter,
        "Total number of server redispatches due to connection failures since the worker process started",
        |r| V::N(r.counters.wredis),
    ),
    fam(
        "haproxy_server_weight",
        Gauge,
        "Server's effective weight, or sum of active servers' effective weights for a backend",
        |r| V::N(r.weight.into()),
    ),
    fam(
        "haproxy_server_check_failures_total",
        Counter,
        "Total number of failed individual health checks per server/backend, since the worker process started",
        |r| {
            if r.checked { V::N(r.chkfail) } else { V::Skip }
        },
    ),
    fam(
        "haproxy_server_check_up_down_total",
        Counter,
        "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started",
        |r| {
            if r.checked { V::N(r.chkdown) } else { V::Skip }
        },
    ),
    fam(
        "haproxy_server_check_last_change_seconds",
        Gauge,
        "How long ago the last server state changed, in seconds",
        |r| V::N(r.lastchg),
    ),
    fam(
        "haproxy_server_downtime_seconds_total",
        Counter,
        "Total time spent in DOWN state, for server or backend",
        |r| {
            if r.checked { V::N(r.downtime) } else { V::Skip }
        },
    ),
    fam(
        "haproxy_server_loadbalanced_total",
        Counter,
        "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
        |r| V::N(r.counters.stot),
    ),
    fam(
        "haproxy_server_queue_time_average_seconds",
        Gauge,
        "Avg. queue time for last 1024 successful connections.",
        |r| V::Ms(r.counters.qtime),
    ),
    fam(
        "haproxy_server_connect_time_average_seconds",
        Gauge,
        "Avg. connect time for last 1024 successful connections.",
        |r| V::Ms(r.counters.ctime),
    ),
    fam(
        "haproxy_server_response_time_average_seconds",
        Gauge,
        "Avg. response time for last 1024 successful connections.",
        |r| V::Ms(r.counters.rtime),
    ),
    fam(
        "haproxy_server_total_time_average_seconds",
        Gauge,
        "Avg. total time for last 1024 successful connections.",
        |r| V::Ms(r.counters.ttime),
    ),
    fam(
        "haproxy_server_max_queue_time_seconds",
        Gauge,
        "Maximum observed time spent in the queue",
        |r| V::Ms(r.counters.qtime_max),
    ),
    fam(
        "haproxy_server_max_connect_time_seconds",
        Gauge,
        "Maximum observed time spent waiting for a connection to complete",
        |r| V::Ms(r.counters.ctime_max),
    ),
    fam(
        "haproxy_server_max_response_time_seconds",
        Gauge,
        "Maximum observed time spent waiting for a server response",
        |r| V::Ms(r.counters.rtime_max),
    ),
    fam(
        "haproxy_server_max_total_time_seconds",
        Gauge,
        "Maximum observed total request+response time (request+queue+connect+response+processing)",
        |r| V::Ms(r.counters.ttime_max),
    ),
    fam(
        "haproxy_server_check_code",
        Gauge,
        "layer5-7 code, if available of the last health check.",
        |r| {
            if r.check_status.is_empty() {
                V::Skip
            } else {
                V::N(r.check_code.unwrap_or(0).into())
            }
        },
    ),
    fam(
        "haproxy_server_check_duration_seconds",
        Gauge,
        "Total duration of the latest server health check, in seconds.",
        |r| match r.check_duration_ms {
            Some(ms) => V::Ms(ms),
            None => V::Skip,
        },
    ),
    fam(
        "haproxy_server_uweight",
        Gauge,
        "Server's user weight, or sum of active servers' user weights for a backend",
        |r| V::N(r.weight.into()),
    ),
];

/// The exporter page for `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = Page {
        buf: String::with_capacity(8192 + 8192 * s.proxies.len()),
    };
    process(&mut out, s);

    let frontends: Vec<(&str, &FrontendRow)> = s
        .proxies
        .iter()
        .filter_map(|p| p.frontend.as_ref().map(|f| (p.name.as_str(), f)))
        .collect();
    let up = |f: &FrontendRow| f.status == "OPEN";
    out.labeled(
        "haproxy_frontend_status",
        Gauge,
        HELP_STATUS,
        &frontends,
        |(name, f), emit| {
            for state in ["DOWN", "UP"] {
                emit(
                    &[("proxy", name), ("state", state)],
                    u64::from((state == "UP") == up(f)),
                );
            }
        },
    );
    for f in FRONTEND {
        out.family(f, &frontends, |(name, _)| vec![("proxy", name)], |(_, r)| r);
    }
    out.responses(
        "haproxy_frontend_http_responses_total",
        &frontends,
        |(n, r)| (vec![("proxy", *n)], r.counters.hrsp),
    );

    let backends: Vec<(&str, &BackendRow, &[ServerRow])> = s
        .proxies
        .iter()
        .filter_map(|p| {
            p.backend
                .as_ref()
                .map(|b| (p.name.as_str(), b, &p.servers[..]))
        })
        .collect();
    out.labeled(
        "haproxy_backend_status",
        Gauge,
        HELP_STATUS,
        &backends,
        |(name, b, _), emit| {
            for state in ["DOWN", "UP"] {
                emit(
                    &[("proxy", name), ("state", state)],
                    u64::from(b.status == state),
                );
            }
        },
    );
    for f in BACKEND {
        out.family(
            f,
            &backends,
            |(name, ..)| vec![("proxy", name)],
            |(_, r, _)| r,
        );
    }
    out.responses(
        "haproxy_backend_http_responses_total",
        &backends,
        |(n, r, _)| (vec![("proxy", *n)], r.counters.hrsp),
    );
    out.labeled(
        "haproxy_backend_agg_server_status",
        Gauge,
        "Backend's aggregated gauge of servers' status",
        &backends,
        |(name, _, servers), emit| {
            for state in SERVER_STATES {
                let n = servers
                    .iter()
                    .filter(|sv| server_state(&sv.status) == state)
                    .count();
                emit(&[("proxy", name), ("state", state)], n as u64);
            }
        },
    );

    let servers: Vec<(&str, &ServerRow)> = s
        .proxies
        .iter()
        .flat_map(|p| p.servers.iter().map(|sv| (p.name.as_str(), sv)))
        .collect();
    out.labeled(
        "haproxy_server_status",
        Gauge,
        HELP_STATUS,
        &servers,
        |(proxy, sv), emit| {
            let now = server_state(&sv.status);
            for state in SERVER_STATES {
                emit(
                    &[("proxy", proxy), ("server", &sv.name), ("state", state)],
                    u64::from(now == state),
                );
            }
        },
    );
    for f in SERVER {
        out.family(
            f,
            &servers,
            |(proxy, sv)| vec![("proxy", proxy), ("server", sv.name.as_str())],
            |(_, r)| r,
        );
    }
    out.responses(
        "haproxy_server_http_responses_total",
        &servers,
        |(p, sv)| {
            (
                vec![("proxy", *p), ("server", sv.name.as_str())],
                sv.counters.hrsp,
            )
        },
    );
    out.labeled(
        "haproxy_server_check_status",
        Gauge,
        "Status of last health check, per state label value.",
        &servers,
        |(proxy, sv), emit| {
            if sv.check_status.is_empty() {
                return;
            }
            for state in CHECK_STATES {
                emit(
                    &[("proxy", proxy), ("server", &sv.name), ("state", state)],
                    u64::from(sv.check_status == state),
                );
            }
        },
    );
    out.buf
}

const HELP_STATUS: &str = "Current status of the service, per state label value.";

/// `haproxy_process_*`: what vakt knows of itself.
fn process(out: &mut Page, s: &Snapshot) {
    let p = &s.process;
    let fronts = || s.proxies.iter().filter_map(|x| x.frontend.as_ref());
    let start = s.now_unix.saturating_sub(s.uptime.as_secs());
    let single: [(&str, Kind, &str, u64); 11] = [
        (
            "haproxy_process_nbthread",
            Gauge,
            "Number of started threads (global.nbthread)",
            p.threads,
        ),
        (
            "haproxy_process_nbproc",
            Gauge,
            "Number of started worker processes (historical, always 1)",
            1,
        ),
        (
            "haproxy_process_relative_process_id",
            Gauge,
            "Relative worker process number (1)",
            1,
        ),
        (
            "haproxy_process_uptime_seconds",
            Gauge,
            "How long ago this worker process was started (seconds)",
            s.uptime.as_secs(),
        ),
        (
            "haproxy_process_start_time_seconds",
            Gauge,
            "Start time in seconds",
            start,
        ),
        (
            "haproxy_process_max_connections",
            Gauge,
            "Hard limit on the number of per-process connections (configured or imposed by Ulimit-n)",
            p.maxconn,
        ),
        (
            "haproxy_process_current_connections",
            Gauge,
            "Current number of connections on this worker process",
            p.current_connections,
        ),
        (
            "haproxy_process_connections_total",
            Counter,
            "Total number of connections on this worker process since started",
            fronts().map(|f| f.counters.stot).sum(),
        ),
        (
            "haproxy_process_requests_total",
            Counter,
            "Total number of requests on this worker process since started",
            fronts().map(|f| f.counters.req_tot).sum(),
        ),
        (
            "haproxy_process_dropped_logs_total",
            Counter,
            "Total number of dropped logs for current worker process since started",
            p.dropped_logs,
        ),
        (
            "haproxy_process_stopping",
            Gauge,
            "1 if the worker process is currently stopping, otherwise zero",
            u64::from(p.stopping),
        ),
    ];
    for (name, kind, help, v) in single {
        out.header(name, kind, help);
        out.sample(name, &[], V::N(v));
    }
    let name = "haproxy_process_build_info";
    out.header(name, Gauge, "Build info");
    out.sample(name, &[("version", &s.version)], V::N(1));
}

struct Page {
    buf: String,
}

impl Page {
    fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.buf, "# HELP {name} {help}");
        let _ = writeln!(self.buf, "# TYPE {name} {}", kind.as_str());
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: V) {
        let b = &mut self.buf;
        b.push_str(name);
        if !labels.is_empty() {
            b.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    b.push(',');
                }
                b.push_str(k);
                b.push_str("=\"");
                escape_label(b, v);
                b.push('"');
            }
            b.push('}');
        }
        let _ = match v {
            V::N(n) => writeln!(b, " {n}"),
            V::Ms(ms) => writeln!(b, " {}.{:03}", ms / 1000, ms % 1000),
            V::Skip => Ok(()),
        };
    }

    /// One family over `rows`; rows without a value add no sample, and a
    /// family without samples is left out entirely.
    fn family<T, R: 'static>(
        &mut self,
        f: &Family<R>,
        rows: &[T],
        labels: impl for<'a> Fn(&'a T) -> Vec<(&'static str, &'a str)>,
        row: impl Fn(&T) -> &R,
    ) {
        let values: Vec<(usize, V)> = rows
            .iter()
            .enumerate()
            .map(|(i, t)| (i, (f.value)(row(t))))
            .filter(|(_, v)| !matches!(v, V::Skip))
            .collect();
        if values.is_empty() {
            return;
        }
        self.header(f.name, f.kind, f.help);
        for (i, v) in values {
            self.sample(f.name, &labels(&rows[i]), v);
        }
    }

    /// A family whose rows add their own label sets (`state`, `code`).
    fn labeled<T>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        rows: &[T],
        each: impl Fn(&T, &mut dyn FnMut(&[(&str, &str)], u64)),
    ) {
        let mut body = Page { buf: String::new() };
        for r in rows {
            each(r, &mut |labels, v| body.sample(name, labels, V::N(v)));
        }
        if body.buf.is_empty() {
            return;
        }
        self.header(name, kind, help);
        self.buf.push_str(&body.buf);
    }

    /// `*_http_responses_total{code="1xx"..."other"}`.
    fn responses<T>(
        &mut self,
        name: &str,
        rows: &[T],
        split: impl for<'a> Fn(&'a T) -> (Vec<(&'static str, &'a str)>, [u64; 6]),
    ) {
        self.labeled(name, Counter, HELP_RESPONSES, rows, |r, emit| {
            let (mut labels, hrsp) = split(r);
            for (code, n) in RESPONSE_CLASSES.iter().zip(hrsp) {
                labels.push(("code", code));
                emit(&labels, n);
                labels.pop();
            }
        });
    }
}

/// HAProxy 2.6's help text for every `*_http_responses_total`, as it is.
const HELP_RESPONSES: &str = "Total number of HTTP responses with status 100-199 returned by this object since the worker process started";

/// Label values escape `\`, `"` and line feeds (exposition format).
fn escape_label(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            ch => out.push(ch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counters, ProxyStats};

    fn snapshot() -> Snapshot {
        Snapshot {
            version: "0.1.0".into(),
            proxies: vec![ProxyStats {
                name: "a\"b".into(),
                frontend: Some(FrontendRow {
                    status: "OPEN".into(),
                    ..Default::default()
                }),
                backend: Some(BackendRow {
                    status: "UP".into(),
                    counters: Counters {
                        rtime: 1234,
                        ..Default::default()
                    },
                    ..Default::default()
                }),
                servers: vec![ServerRow {
                    name: "web01".into(),
                    status: "no check".into(),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn samples_carry_haproxys_labels_and_seconds() {
        let page = render(&snapshot());
        assert!(
            page.contains("haproxy_frontend_status{proxy=\"a\\\"b\",state=\"UP\"} 1\n"),
            "{page}"
        );
        assert!(
            page.contains(
                "haproxy_backend_response_time_average_seconds{proxy=\"a\\\"b\"} 1.234\n"
            )
        );
        assert!(
            page.contains(
                "haproxy_server_status{proxy=\"a\\\"b\",server=\"web01\",state=\"UP\"} 1\n"
            )
        );
        assert!(page.contains("haproxy_process_build_info{version=\"0.1.0\"} 1\n"));
        // Every family has its HELP and TYPE once, right before its samples.
        let types = page.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(
            types,
            page.lines().filter(|l| l.starts_with("# HELP ")).count()
        );
    }

    #[test]
    fn families_vakt_cannot_fill_are_absent_not_zero() {
        let page = render(&snapshot());
        // An unchecked server without maxconn: no check figures, no limit.
        for name in [
            "haproxy_server_check_status",
            "haproxy_server_check_failures_total",
            "haproxy_server_check_code",
            "haproxy_server_limit_sessions",
        ] {
            assert!(!page.contains(name), "{name}");
        }
    }
}
