//! The `vakt` CLI: inventory, render, plan, up/down on the local transport.
