//! Where the shop keeps carts and orders: [`Store::Memory`] (this process
//! only, bounded; a cart is lost when another server answers) or
//! [`Store::MariaDb`] (the cluster's database, shared by every web host, so
//! a cart survives its web host). The MariaDB store creates its tables
//! itself (InnoDB), bounds every operation by a timeout and reconnects
//! through its pool when the server comes back; it knows no HTTP.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool, PoolConstraints, PoolOpts, TxOpts};

use super::config::DbConfig;

/// Most sessions (carts) and orders the memory store keeps; the oldest go first.
const MAX_SESSIONS: usize = 10_000;
const MAX_ORDERS: usize = 10_000;
/// Most items in one cart (both stores).
pub const MAX_ITEMS: usize = 100;

/// An order: the cart it was made of, numbered by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: u64,
    pub items: Vec<String>,
}

/// The database could not do what was asked: the shop answers 503 with
/// this text, and nothing was changed that the client was told about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the shop's database at {addr} did not answer within {after:?} ({what})")]
    TimedOut {
        addr: SocketAddr,
        what: &'static str,
        after: Duration,
    },
    #[error("the shop's database at {addr} failed ({what}): {cause}")]
    Failed {
        addr: SocketAddr,
        what: &'static str,
        cause: String,
    },
}

/// Carts and orders, in memory or in MariaDB.
pub enum Store {
    Memory(Memory),
    MariaDb(MariaDb),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(Memory::default())
    }

    /// Says where carts live, for the shop's page.
    pub fn describe(&self) -> &'static str {
        match self {
            Store::Memory(_) => {
                "Carts live in each web server's memory: without the load balancer's persistence cookie, a cart seems to empty when another server answers."
            }
            Store::MariaDb(_) => {
                "Carts live in the cluster's MariaDB: any web server shows the same cart, and an order is kept once it is confirmed."
            }
        }
    }

    pub async fn cart(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.cart(sid)),
            Store::MariaDb(db) => db.cart(sid).await,
        }
    }

    /// Adds `item` (unless the cart holds [`MAX_ITEMS`]); returns the cart.
    pub async fn add(&self, sid: &str, item: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.add(sid, item)),
            Store::MariaDb(db) => db.add(sid, item).await,
        }
    }

    /// Turns the session's cart into an order and empties the cart; `None`
    /// when the cart is empty. With MariaDB, `Ok` means committed.
    pub async fn place(&self, sid: &str) -> Result<Option<Order>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.place(sid)),
            Store::MariaDb(db) => db.place(sid).await,
        }
    }

    /// Order `id` if this session placed it.
    pub async fn order(&self, sid: &str, id: u64) -> Result<Option<Order>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.order(sid, id)),
            Store::MariaDb(db) => db.order(sid, id).await,
        }
    }
}

/// Carts by session id, and session ids oldest first for eviction.
type Carts = (HashMap<String, Vec<String>>, VecDeque<String>);
/// Orders by id with their session and items, and the last id given.
type Orders = (BTreeMap<u64, (String, Vec<String>)>, u64);

/// The memory store: carts and orders of this process only.
#[derive(Default)]
pub struct Memory {
    carts: Mutex<Carts>,
    orders: Mutex<Orders>,
}

impl Memory {
    fn cart(&self, sid: &str) -> Vec<String> {
        let carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
        carts.0.get(sid).cloned().unwrap_or_default()
    }

    fn add(&self, sid: &str, item: &str) -> Vec<String> {
        let mut carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *carts;
        if !map.contains_key(sid) {
            if map.len() >= MAX_SESSIONS
                && let Some(old) = order.pop_front()
            {
                map.remove(&old);
            }
            order.push_back(sid.to_string());
        }
        let items = map.entry(sid.to_string()).or_default();
        if items.len() < MAX_ITEMS {
            items.push(item.to_string());
        }
        items.clone()
    }

    fn place(&self, sid: &str) -> Option<Order> {
        let items = {
            let mut carts = self.carts.lock().unwrap_or_else(|e| e.into_inner());
            let items = carts.0.remove(sid).filter(|i| !i.is_empty())?;
            carts.1.retain(|s| s != sid);
            items
        };
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        let (map, last) = &mut *orders;
        *last += 1;
        if map.len() >= MAX_ORDERS {
            map.pop_first();
        }
        map.insert(*last, (sid.to_string(), items.clone()));
        Some(Order { id: *last, items })
    }

    fn order(&self, sid: &str, id: u64) -> Option<Order> {
        let orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        orders
            .0
            .get(&id)
            .filter(|(s, _)| s == sid)
            .map(|(_, items)| Order {
                id,
                items: items.clone(),
            })
    }
}

/// The tables, created by the shop itself on its first connection. InnoDB
/// (the server's default, said anyway): an order acknowledged after COMMIT
/// survives a crash of the server.
const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS cart_items (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        session CHAR(32) NOT NULL,
        item VARCHAR(64) NOT NULL,
        added_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        KEY by_session (session, id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS orders (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        session CHAR(32) NOT NULL,
        placed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE IF NOT EXISTS order_items (
        order_id BIGINT UNSIGNED NOT NULL,
        pos INT UNSIGNED NOT NULL,
        item VARCHAR(64) NOT NULL,
        PRIMARY KEY (order_id, pos)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
];

/// The cluster's MariaDB through a small pool. Values always travel as
/// statement parameters (binary protocol), so nothing is escaped by hand.
pub struct MariaDb {
    pool: Pool,
    addr: SocketAddr,
    timeout: Duration,
    /// Set once the tables exist; until then every operation tries to
    /// create them first (the server may be down when the shop starts).
    schema: tokio::sync::OnceCell<()>,
}

impl MariaDb {
    /// A store for `db` with `password`. Connects lazily: the shop starts,
    /// and serves its other pages, while the database is down.
    pub fn new(db: &DbConfig, password: String) -> MariaDb {
        let pool_opts = PoolOpts::default()
            .with_constraints(PoolConstraints::new(0, 8).unwrap_or_default())
            .with_inactive_connection_ttl(Duration::from_secs(60));
        let opts = OptsBuilder::default()
            .ip_or_hostname(db.addr.ip().to_string())
            .tcp_port(db.addr.port())
            .user(Some(db.user.clone()))
            .pass(Some(password))
            .db_name(Some(db.database.clone()))
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(10)))
            .pool_opts(pool_opts);
        MariaDb {
            pool: Pool::new(opts),
            addr: db.addr,
            timeout: db.timeout,
            schema: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs `op` on a pooled connection (the tables made first), all of it
    /// within the timeout. A broken idle connection is replaced by the pool;
    /// one that fails or times out here is dropped with its future, so the
    /// next request starts on a fresh one.
    async fn with_conn<T>(
        &self,
        what: &'static str,
        op: impl AsyncFnOnce(&mut Conn) -> mysql_async::Result<T>,
    ) -> Result<T, StoreError> {
        let work = async {
            let mut conn = self.pool.get_conn().await?;
            self.schema
                .get_or_try_init(|| async {
                    for sql in SCHEMA {
                        conn.query_drop(sql).await?;
                    }
                    Ok::<_, mysql_async::Error>(())
                })
                .await?;
            op(&mut conn).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Failed {
                addr: self.addr,
                what,
                cause: e.to_string(),
            }),
            Err(_) => Err(StoreError::TimedOut {
                addr: self.addr,
                what,
                after: self.timeout,
            }),
        }
    }

    async fn cart(&self, sid: &str) -> Result<Vec<String>, StoreError> {
        self.with_conn("reading a cart", async |c| items(c, sid).await)
            .await
    }

    async fn add(&self, sid: &str, item: &str) -> Result<Vec<String>, StoreError> {
        self.with_conn("adding to a cart", async |c| {
            // The count and the insert in one statement: two servers adding
            // to one cart at once still stop at MAX_ITEMS.
            c.exec_drop(
                "INSERT INTO cart_items (session, item) SELECT ?, ? FROM DUAL \
                 WHERE (SELECT COUNT(*) FROM cart_items WHERE session = ?) < ?",
                (sid, item, sid, MAX_ITEMS as u64),
            )
            .await?;
            items(c, sid).await
        })
        .await
    }

    async fn place(&self, sid: &str) -> Result<Option<Order>, StoreError> {
        self.with_conn("placing an order", async |c| {
            let mut tx = c.start_transaction(TxOpts::default()).await?;
            let items: Vec<String> = tx
                .exec(
                    "SELECT item FROM cart_items WHERE session = ? ORDER BY id FOR UPDATE",
                    (sid,),
                )
                .await?;
            if items.is_empty() {
                tx.rollback().await?;
                return Ok(None);
            }
            tx.exec_drop("INSERT INTO orders (session) VALUES (?)", (sid,))
                .await?;
            let Some(id) = tx.last_insert_id() else {
                tx.rollback().await?;
                return Err(mysql_async::Error::Other(
                    "the server gave the new order no id".into(),
                ));
            };
            tx.exec_batch(
                "INSERT INTO order_items (order_id, pos, item) VALUES (?, ?, ?)",
                items
                    .iter()
                    .enumerate()
                    .map(|(pos, item)| (id, pos as u64, item.as_str())),
            )
            .await?;
            tx.exec_drop("DELETE FROM cart_items WHERE session = ?", (sid,))
                .await?;
            // Only a COMMIT that returned makes the order the client's: with
            // InnoDB's defaults it is on disk then.
            tx.commit().await?;
            Ok(Some(Order { id, items }))
        })
        .await
    }

    async fn order(&self, sid: &str, id: u64) -> Result<Option<Order>, StoreError> {
        self.with_conn("reading an order", async |c| {
            let found: Option<u64> = c
                .exec_first(
                    "SELECT id FROM orders WHERE id = ? AND session = ?",
                    (id, sid),
                )
                .await?;
            if found.is_none() {
                return Ok(None);
            }
            let items: Vec<String> = c
                .exec(
                    "SELECT item FROM order_items WHERE order_id = ? ORDER BY pos",
                    (id,),
                )
                .await?;
            Ok(Some(Order { id, items }))
        })
        .await
    }
}

async fn items(c: &mut Conn, sid: &str) -> mysql_async::Result<Vec<String>> {
    c.exec(
        "SELECT item FROM cart_items WHERE session = ? ORDER BY id",
        (sid,),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[tokio::test]
    async fn memory_orders_empty_the_cart_and_belong_to_their_session() {
        let s = Store::memory();
        assert_eq!(
            s.place(A).await.unwrap(),
            None,
            "an empty cart orders nothing"
        );
        s.add(A, "apple").await.unwrap();
        assert_eq!(s.add(A, "bread").await.unwrap(), ["apple", "bread"]);
        let o = s.place(A).await.unwrap().unwrap();
        assert_eq!(o.items, ["apple", "bread"]);
        assert!(s.cart(A).await.unwrap().is_empty());
        assert_eq!(s.order(A, o.id).await.unwrap(), Some(o.clone()));
        assert_eq!(s.order(B, o.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_carts_stop_at_max_items() {
        let s = Store::memory();
        for _ in 0..MAX_ITEMS + 5 {
            s.add(A, "x").await.unwrap();
        }
        assert_eq!(s.cart(A).await.unwrap().len(), MAX_ITEMS);
    }

    fn db_at(addr: SocketAddr, timeout: Duration) -> Store {
        Store::MariaDb(MariaDb::new(
            &DbConfig {
                addr,
                database: "shop".into(),
                user: "shop".into(),
                password_file: "/nonexistent".into(),
                timeout,
            },
            "pw".into(),
        ))
    }

    #[tokio::test]
    async fn a_refused_database_fails_at_once_and_names_its_address() {
        // A port nobody listens on: bound, then closed.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = db_at(addr, Duration::from_secs(5));
        let t = std::time::Instant::now();
        let e = s.cart(A).await.unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(
            e.contains(&format!("database at {addr} failed (reading a cart)")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_silent_database_times_out_instead_of_hanging() {
        // Accepts and never says a word, like a server that stopped
        // answering.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                conns.push(c);
            }
        });
        let s = db_at(addr, Duration::from_millis(300));
        let t = std::time::Instant::now();
        let e = s.place(A).await.unwrap_err().to_string();
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(
            e.contains(&format!(
                "database at {addr} did not answer within 300ms (placing an order)"
            )),
            "{e}"
        );
        held.abort();
    }
}
