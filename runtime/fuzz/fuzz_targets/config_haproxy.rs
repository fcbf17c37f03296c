//! The haproxy.cfg front end (`vakt proxy -f`, `vakt import`). Any text gets
//! a config or diagnostics, never a panic; diagnostics render; a config that
//! parses converts to TOML that parses (what `vakt import` writes).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vakt_runtime::auth::hash_password_with_salt;
use vakt_runtime::config::{Source, from_haproxy, from_toml, to_toml};

/// One crypt hash standing in for any plain-text password: hashing each
/// one for real costs milliseconds per input.
static HASH: LazyLock<String> = LazyLock::new(|| hash_password_with_salt("fuzz", "fuzzsalt"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "FUZZ_ADDR").then(|| "127.0.0.1:8080".to_string());
    match from_haproxy(&Source::new("fuzz.cfg", text), &env) {
        Ok((config, warnings)) => {
            let _ = warnings.to_string();
            if let Ok(toml) = to_toml(&config, &|_| HASH.clone()) {
                if let Err(d) = from_toml(&Source::new("import.toml", toml.as_str())) {
                    panic!("imported TOML does not parse:\n{toml}\n{d}");
                }
            }
        }
        Err(d) => {
            let _ = d.to_string();
        }
    }
});
