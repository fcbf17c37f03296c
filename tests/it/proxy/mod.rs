//! `vakt proxy` against real backends on loopback.
