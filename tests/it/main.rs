//! The one integration test program (see STYLE.md §7). It runs the real `vakt`
//! binary against real backends on loopback and, for the lab suites, real sshd
//! and keepalived inside network namespaces the tests create.
// Helpers here are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod haproxy;
mod lab;
mod lab_acme;
mod lab_backups;
mod lab_firewall;
mod lab_ha;
mod lab_lifecycle;
mod lab_mariadb;
mod lab_mariadb_systemd;
mod lab_ops;
mod lab_releases;
mod lab_shop;
mod lab_ssh;
mod lab_systemd;
mod lab_tls;
mod lab_verify;
mod lab_zero_downtime;
mod proxy;
mod tidy;
