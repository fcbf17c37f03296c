//! The TOML proxy config front end (`vakt proxy --check`). Any text gets a
//! config or diagnostics, never a panic; diagnostics render; a config that
//! parses is emitted back to TOML that parses again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vakt_runtime::config::{Source, from_toml, to_toml};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match from_toml(&Source::new("fuzz.toml", text)) {
        Ok((config, warnings)) => {
            let _ = warnings.to_string();
            if let Ok(again) = to_toml(&config, &|p| p.to_string()) {
                if let Err(d) = from_toml(&Source::new("again.toml", again.as_str())) {
                    panic!("emitted TOML does not parse:\n{again}\n{d}");
                }
            }
        }
        Err(d) => {
            let _ = d.to_string();
        }
    }
});
