//! The `vakt` binary.
fn main() {}
