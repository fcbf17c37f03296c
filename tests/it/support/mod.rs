//! Helpers shared by the integration suites: spawning the `vakt` binary,
//! backends on 127.0.0.1:0, and raw HTTP clients.
