//! One module per subcommand.

pub mod check;
pub mod genkey;
pub mod keys;
pub mod route;
pub mod run;

use std::io::Read;
use std::path::Path;

/// `llm-gateway 0.1.0`, plus the commit when the build recorded one.
pub fn version() -> String {
    match option_env!("LLM_GATEWAY_GIT_COMMIT") {
        Some(commit) => format!("llm-gateway {} [{commit}]", env!("CARGO_PKG_VERSION")),
        None => format!("llm-gateway {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Reads a config file, or standard input for `-`; returns the name to show with it.
pub fn read_config(path: &Path) -> std::io::Result<(String, String)> {
    if path == Path::new("-") {
        let mut source = String::new();
        std::io::stdin().read_to_string(&mut source)?;
        Ok(("<stdin>".to_owned(), source))
    } else {
        Ok((path.display().to_string(), crate::config::read_text(path)?))
    }
}
