//! Writes a [`Config`] back out as the proxy's TOML (what `vakt import`
//! prints for a haproxy.cfg). The inventory's `[balancer]` fragment is the
//! CLI's format and is written there (`commands::import`).
//! Built with `toml_edit`, so every string is quoted and escaped correctly.
//! Only what the TOML format can express is written: frontends that route
//! to several backends are refused with the reason.

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, value};

use super::*;
use crate::config::reader::format_duration;

/// The proxy TOML for `c`. `hash` turns a plain-text stats password into a
/// crypt hash (plain text is refused in TOML).
pub fn to_toml(c: &Config, hash: &dyn Fn(&str) -> String) -> Result<String, String> {
    let mut doc = DocumentMut::new();
    doc["global"] = Item::Table(global_table(&c.global));
    let mut listens = ArrayOfTables::new();
    for fe in &c.frontends {
        if !fe.routes.is_empty() {
            return Err(format!(
                "frontend `{}` routes requests with acls to several backends, which the TOML format cannot express yet; keep running it with `vakt proxy -f`",
                fe.name
            ));
        }
        let be = fe.default_backend.map(|i| &c.backends[i]);
        listens.push(listen_table(fe, be, hash));
    }
    doc["listen"] = Item::ArrayOfTables(listens);
    Ok(doc.to_string())
}

fn global_table(g: &Global) -> Table {
    let mut global = Table::new();
    global["maxconn"] = value(g.maxconn as i64);
    global["log"] = value(match &g.log {
        LogTarget::Off => "off".to_string(),
        LogTarget::Stdout => "stdout".to_string(),
        LogTarget::Udp(a) => format!("udp://{a}"),
        LogTarget::Unix(p) => format!("unix://{}", p.display()),
        LogTarget::File(p) => format!("file://{}", p.display()),
    });
    if g.syslog_format != SyslogFormat::default_for(&g.log) {
        global["syslog_format"] = value(g.syslog_format.name());
    }
    if g.log_anonymize {
        global["log_anonymize"] = value(true);
    }
    global["log_facility"] = value(
        FACILITIES
            .get(usize::from(g.log_facility))
            .copied()
            .unwrap_or("local0"),
    );
    if g.spread_checks > 0 {
        global["spread_checks"] = value(i64::from(g.spread_checks));
    }
    if let Some(p) = &g.admin_socket {
        global["admin_socket"] = value(p.display().to_string());
    }
    if let Some(t) = g.threads {
        global["threads"] = value(t as i64);
    }
    if let Some(u) = &g.user {
        global["user"] = value(u.as_str());
    }
    if let Some(gr) = &g.group {
        global["group"] = value(gr.as_str());
    }
    global
}

/// One `[[listen]]`: the frontend with its default backend, if any.
fn listen_table(fe: &Frontend, be: Option<&Backend>, hash: &dyn Fn(&str) -> String) -> Table {
    let mut t = Table::new();
    t["name"] = value(fe.name.as_str());
    let mut bind = Array::new();
    for b in &fe.bind {
        bind.push(b.to_string());
    }
    t["bind"] = value(bind);
    if let Some(be) = be {
        t["balance"] = value(be.balance.as_str());
        t["retries"] = value(i64::from(be.retries));
        t["redispatch"] = value(be.redispatch);
    }
    t["maxconn"] = value(fe.maxconn as i64);
    t["http_close"] = value(fe.http_close || be.is_some_and(|b| b.http_close));
    t["forwardfor"] = value(fe.forwardfor || be.is_some_and(|b| b.forwardfor));
    t["log_format"] = value(if fe.log.is_some() { "httplog" } else { "off" });
    t["dontlognull"] = value(fe.dontlognull);
    let mut timeout = InlineTable::new();
    if let Some(be) = be {
        timeout.insert("connect", format_duration(be.timeout_connect).into());
    }
    timeout.insert("client", format_duration(fe.timeout_client).into());
    if let Some(be) = be {
        timeout.insert("server", format_duration(be.timeout_server).into());
        timeout.insert("queue", format_duration(be.timeout_queue).into());
        if let Some(t) = be.timeout_tunnel {
            timeout.insert("tunnel", format_duration(t).into());
        }
    }
    timeout.insert(
        "http_request",
        format_duration(fe.timeout_http_request).into(),
    );
    t["timeout"] = value(timeout);
    if let Some(ck) = be.and_then(|b| b.cookie.as_ref()) {
        let mut it = InlineTable::new();
        it.insert("name", ck.name.as_str().into());
        it.insert("mode", "insert".into());
        it.insert("indirect", ck.indirect.into());
        it.insert("nocache", ck.nocache.into());
        t["cookie"] = value(it);
    }
    // The listener's check: the first checked server's.
    let check = be.and_then(|b| b.servers.iter().find_map(|s| s.check.clone()));
    if let Some(ch) = &check {
        t["check"] = value(check_table(ch));
    }
    if let Some(st) = &fe.stats {
        t["stats"] = value(stats_table(st, hash));
    }
    if let Some(m) = &fe.metrics {
        let mut it = InlineTable::new();
        it.insert("uri", m.uri.as_str().into());
        if !m.users.is_empty() {
            it.insert("users", users_array(&m.users, hash).into());
        }
        if !m.allow.is_empty() {
            it.insert("allow", allow_array(&m.allow).into());
        }
        t["metrics"] = value(it);
    }
    let mut servers = ArrayOfTables::new();
    for s in be.map(|b| b.servers.as_slice()).unwrap_or(&[]) {
        servers.push(server_table(s, check.as_ref()));
    }
    if !servers.is_empty() {
        t["server"] = Item::ArrayOfTables(servers);
    }
    t
}

/// The `stats` table; plain-text passwords are hashed with `hash`.
fn stats_table(st: &Stats, hash: &dyn Fn(&str) -> String) -> InlineTable {
    let mut it = InlineTable::new();
    it.insert("uri", st.uri.as_str().into());
    it.insert("realm", st.realm.as_str().into());
    it.insert("users", users_array(&st.users, hash).into());
    if st.admin {
        it.insert("admin", true.into());
    }
    if let Some(r) = st.refresh {
        it.insert("refresh", format_duration(r).into());
    }
    if !st.allow.is_empty() {
        it.insert("allow", allow_array(&st.allow).into());
    }
    it
}

/// `["10.0.0.0/8", "192.0.2.1/32"]`.
fn allow_array(list: &[Cidr]) -> Array {
    list.iter().map(|c| c.to_string()).collect()
}

/// `["user:$6$..."]`; plain-text passwords are hashed with `hash`.
fn users_array(list: &[StatsUser], hash: &dyn Fn(&str) -> String) -> Array {
    let mut users = Array::new();
    for u in list {
        let h = match &u.password {
            Password::Hash(h) => h.clone(),
            Password::Plain(p) => hash(p),
        };
        users.push(format!("{}:{h}", u.name));
    }
    users
}

/// One `[[listen.server]]`; its check is written only where it differs from
/// the listener's `check`.
fn server_table(s: &Server, listener_check: Option<&Check>) -> Table {
    let mut st = Table::new();
    st["name"] = value(s.name.as_str());
    st["addr"] = value(s.addr.to_string());
    if let Some(ck) = &s.cookie {
        st["cookie"] = value(ck.as_str());
    }
    st["weight"] = value(i64::from(s.weight));
    if s.maxconn > 0 {
        st["maxconn"] = value(s.maxconn as i64);
    }
    match (&s.check, listener_check) {
        (None, _) => st["check"] = value(false),
        (Some(a), Some(b)) if a != b => st["check"] = value(check_table(a)),
        _ => {}
    }
    if s.backup {
        st["backup"] = value(true);
    }
    st
}

fn check_table(c: &Check) -> InlineTable {
    let mut it = InlineTable::new();
    if let Some(p) = &c.path {
        it.insert("path", p.as_str().into());
    }
    it.insert("interval", format_duration(c.interval).into());
    it.insert("rise", i64::from(c.rise).into());
    it.insert("fall", i64::from(c.fall).into());
    if c.path.is_some() {
        it.insert("expect", c.expect.to_string().into());
    }
    it
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_round_trips_through_toml() {
        let src = Source::new(
            "t.cfg",
            include_str!("../../../tests/data/tutorial-haproxy.cfg"),
        );
        let (c, _) = from_haproxy(&src, &|_| None).unwrap();
        let text = to_toml(&c, &|p| format!("$6$x${}", p.len())).unwrap();
        let (back, _) = from_toml(&Source::new("import.toml", text.clone()))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.backends[0].servers, c.backends[0].servers, "{text}");
        assert_eq!(
            back.backends[0].timeout_connect,
            c.backends[0].timeout_connect
        );
        assert_eq!(back.frontends[0].bind, c.frontends[0].bind);
        assert!(text.contains("admin:$6$x$22"), "{text}");
    }
}
