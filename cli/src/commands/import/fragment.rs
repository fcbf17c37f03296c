//! `vakt import --inventory-fragment`: writes the `[balancer]` table of an
//! inventory from a proxy [`Config`]'s first listener. The inventory's format
//! is the CLI's, so this writer lives here and the runtime only hands over
//! the typed `Config`. Built with `toml_edit`, so strings are quoted and
//! escaped correctly; the stats password is never copied (`password_env`).

use toml_edit::{DocumentMut, InlineTable, Item, Table, value};
use vakt_runtime::config::Config;
use vakt_runtime::config::reader::format_duration;

/// The `[balancer]` table of an inventory, from the first listener.
pub(crate) fn to_inventory_fragment(c: &Config) -> Result<String, String> {
    let fe = c.frontends.first().ok_or("no listener to describe")?;
    let be = fe
        .default_backend
        .map(|i| &c.backends[i])
        .ok_or("the first listener has no backend")?;
    let mut t = Table::new();
    t["balance"] = value(be.balance.as_str());
    if let Some(ck) = &be.cookie {
        t["cookie"] = value(ck.name.as_str());
    }
    if let Some(ch) = be.servers.iter().find_map(|s| s.check.as_ref()) {
        let mut it = InlineTable::new();
        if let Some(p) = &ch.path {
            it.insert("path", p.as_str().into());
        }
        it.insert("interval", format_duration(ch.interval).into());
        it.insert("rise", i64::from(ch.rise).into());
        it.insert("fall", i64::from(ch.fall).into());
        t["health"] = value(it);
    }
    t["retries"] = value(i64::from(be.retries));
    t["redispatch"] = value(be.redispatch);
    t["maxconn"] = value(fe.maxconn as i64);
    if let Some(st) = &fe.stats {
        let mut it = InlineTable::new();
        it.insert("uri", st.uri.as_str().into());
        it.insert("realm", st.realm.as_str().into());
        if let Some(u) = st.users.first() {
            it.insert("user", u.name.as_str().into());
        }
        it.insert("password_env", "VAKT_STATS_PASSWORD".into());
        t["stats"] = value(it);
    }
    let mut doc = DocumentMut::new();
    doc["balancer"] = Item::Table(t);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use vakt_runtime::config::{Source, from_haproxy};

    use super::*;

    fn tutorial() -> Config {
        let src = Source::new(
            "t.cfg",
            include_str!("../../../../tests/data/tutorial-haproxy.cfg"),
        );
        from_haproxy(&src, &|_| None).unwrap().0
    }

    #[test]
    fn the_tutorial_becomes_a_balancer_table() {
        let frag = to_inventory_fragment(&tutorial()).unwrap();
        assert!(
            frag.contains("[balancer]") && frag.contains("cookie = \"SERVERID\""),
            "{frag}"
        );
    }

    #[test]
    fn the_fragment_is_a_balancer_the_inventory_reads_back() {
        let c = tutorial();
        let frag = to_inventory_fragment(&c).unwrap();
        let text = format!(
            "[cluster]\nname = \"t\"\n\n[[hosts]]\nname = \"lb01\"\nroles = [\"lb\"]\npublic_ip = \"203.0.113.1\"\nprivate_ip = \"10.0.0.1\"\n\n\
             [[hosts]]\nname = \"web01\"\nroles = [\"web\"]\nprivate_ip = \"10.0.0.2\"\nweb = {{ port = 80, cookie = \"w1\" }}\n\n{frag}"
        );
        let (inv, _) = crate::inventory::parse(&Source::new("inventory.toml", text.as_str()), None)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let (b, be) = (&inv.balancer, &c.backends[0]);
        let spelled = serde_json::to_value(b.balance).unwrap();
        assert_eq!(spelled.as_str(), Some(be.balance.as_str()));
        assert_eq!(b.cookie, "SERVERID");
        assert_eq!((b.retries, b.redispatch), (be.retries, be.redispatch));
        let check = be.servers[0].check.as_ref().unwrap();
        assert_eq!(
            (b.health.interval.as_str(), b.health.rise, b.health.fall),
            (
                format_duration(check.interval).as_str(),
                check.rise,
                check.fall
            )
        );
        assert_eq!(b.stats.as_ref().unwrap().user, "admin");
    }
}
