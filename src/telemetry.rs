//! Logging: a tracing subscriber writing human-readable lines on a terminal and JSON lines
//! otherwise (or as `log.format` says), filtered by `log.level`.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Logs go to stderr, so commands that print results
/// (`persona admin … list`) keep stdout clean for pipes.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let format = config.format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
