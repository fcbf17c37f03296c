//! vakt-runtime: the load balancer behind `vakt proxy`.
//!
//! # Layout
//! Data flows one way: `config` (TOML → one typed [`Config`]) → `listener`
//! (accept, limits, shutdown) → `proxy` (one request) → `balance` + `persist`
//! (which server) → `pool` + `health` (servers and their state) → `stats`,
//! `admin`, `log` (what operators see).

pub mod config;

pub use config::Config;
