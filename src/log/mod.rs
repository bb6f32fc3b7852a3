//! Logging setup. kurad logs through `tracing` to stderr; `KURA_LOG` takes an
//! env-filter expression. Access events (`kura::access`) are off unless asked
//! for (`KURA_LOG=info,kura::access=info`) until the guide's log files exist.

use tracing_subscriber::EnvFilter;

/// The filter used when `KURA_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,kura::access=off";

/// Installs the global subscriber.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("KURA_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
