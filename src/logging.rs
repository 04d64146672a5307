//! Log output: `--log-format text|json`, level from `RUST_LOG` (default `info`), to stderr
//! through [`crate::log_sink`] (batched by a writer thread, never blocking a request).

use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Writes the lines still queued when dropped: hold it until the process is about to exit.
#[must_use]
pub struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        crate::log_sink::close(Duration::from_secs(2));
    }
}

pub fn init(format: LogFormat) -> Flush {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    crate::log_sink::install(format, ansi);
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(crate::log_sink::Writer).with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Flush
}
