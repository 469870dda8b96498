//! The log filter, for the binary and for apps that embed the library: `trace` shows everything
//! except the frames the WebSocket library repeats verbatim, because those carry subscription
//! and sign-in signatures (SECURITY.md, "Logs"). An app that embeds the routers and logs with
//! `tracing_subscriber::fmt::init()` and `RUST_LOG=trace` would otherwise write every valid
//! `auth` its clients send into its logs.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

/// Dependencies whose trace output repeats what peers send, verbatim: tungstenite logs every
/// frame at trace (`Received message {...}`), subscription and sign-in signatures included.
const VERBATIM_LOGGERS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// The filter for a `tracing` directive string (`--log-level`, or `RUST_LOG` in an embedding
/// app): as given, except that when it turns everything to trace, the WebSocket library's
/// loggers stay at debug unless the string names them itself (`trace,tungstenite=trace` to see
/// frames while debugging, signatures and all). A string that does not parse gives `info`.
///
/// ```no_run
/// let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
/// tracing_subscriber::fmt()
///     .with_env_filter(rf_broadcast::log_filter(&directives))
///     .init();
/// ```
pub fn log_filter(directives: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info"));
    for name in VERBATIM_LOGGERS {
        if caps_logger(directives, name) {
            if let Ok(d) = format!("{name}=debug").parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

/// Whether `directives` would log `name` at trace only because its default level is trace
/// (`trace`, `TRACE`, or `5`, the number tracing also reads as trace).
fn caps_logger(directives: &str, name: &str) -> bool {
    let list: Vec<&str> = directives.split(',').map(str::trim).collect();
    let default_trace = list
        .iter()
        .any(|d| !d.contains('=') && d.parse::<LevelFilter>().ok() == Some(LevelFilter::TRACE));
    let named = list.iter().any(|d| d.starts_with(name));
    default_trace && !named
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn only_a_trace_default_caps_the_verbatim_loggers() {
        assert!(caps_logger("trace", "tungstenite"));
        assert!(caps_logger("5", "tungstenite"));
        assert!(caps_logger("warn,trace", "tungstenite"));
        assert!(caps_logger("TRACE,hyper=info", "tokio_tungstenite"));
        // Lower defaults are left alone (a cap at debug would raise them).
        for level in [
            "error",
            "warn",
            "info",
            "debug",
            "4",
            "info,rf_broadcast=trace",
        ] {
            assert!(!caps_logger(level, "tungstenite"), "{level}");
        }
        // Naming the logger is asking for its frames.
        assert!(!caps_logger("trace,tungstenite=trace", "tungstenite"));
        assert!(caps_logger("trace,tungstenite=trace", "tokio_tungstenite"));
    }

    /// Which of a frame-like trace event from tungstenite, its debug event, and a trace event
    /// of our own pass the filter for `directives`.
    fn passes(directives: &str) -> (bool, bool, bool) {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Seen(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
            fn on_event(
                &self,
                e: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                let m = e.metadata();
                self.0
                    .lock()
                    .unwrap()
                    .push(format!("{} {}", m.level(), m.target()));
            }
        }
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry()
            .with(log_filter(directives))
            .with(seen.clone());
        with_default(subscriber, || {
            tracing::trace!(target: "tungstenite::protocol", "Received message {{\"auth\":\"k:s\"}}");
            tracing::debug!(target: "tokio_tungstenite::compat", "debug");
            tracing::trace!(target: "rf_broadcast::ws::handler", "frame");
        });
        let seen = seen.0.lock().unwrap().clone();
        (
            seen.contains(&"TRACE tungstenite::protocol".to_string()),
            seen.contains(&"DEBUG tokio_tungstenite::compat".to_string()),
            seen.contains(&"TRACE rf_broadcast::ws::handler".to_string()),
        )
    }

    #[test]
    fn at_trace_the_frames_are_not_logged_but_everything_else_is() {
        assert_eq!(passes("trace"), (false, true, true));
        assert_eq!(passes("5"), (false, true, true));
        assert_eq!(passes("trace,tungstenite=trace"), (true, true, true));
        assert_eq!(passes("info"), (false, false, false));
        assert_eq!(passes("not a filter ==="), (false, false, false));
    }
}
