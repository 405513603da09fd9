//! Logging: a tracing subscriber writing human-readable lines on a terminal and JSON lines
//! otherwise (or as `log.format` says), filtered by `log.level`.
//!
//! refinery logs its routine at info on every start ("no migrations to apply", one line per
//! migration, each with the build machine's source path in `log.file`); it is held at warn
//! unless `log.level` names it, and persona logs one `applied migration` line per migration
//! itself.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Logs go to stderr, so commands that print results
/// (`persona admin … list`) keep stdout clean for pipes.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(directives(&config.level))
        .unwrap_or_else(|_| EnvFilter::new(directives("info")));
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

/// Libraries held at warn unless `log.level` mentions them.
const QUIETED: &[&str] = &["refinery", "refinery_core"];

/// `log.level` with a `<target>=warn` directive for each [`QUIETED`] library it leaves
/// unnamed.
fn directives(level: &str) -> String {
    let named: Vec<&str> = level
        .split(',')
        .map(|directive| directive.split(['=', '[']).next().unwrap_or("").trim())
        .collect();
    let mut all = level.to_owned();
    for target in QUIETED {
        if !named.contains(target) {
            all.push_str(&format!(",{target}=warn"));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refinery_is_quieted_unless_the_level_names_it() {
        assert_eq!(directives("info"), "info,refinery=warn,refinery_core=warn");
        assert_eq!(
            directives("debug,refinery_core=info"),
            "debug,refinery_core=info,refinery=warn"
        );
        EnvFilter::try_new(directives("persona=debug,tower_http=info")).unwrap();
    }
}
