//! The command line: `run`, `check`, `genkey`, `keys`, `schema`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "llm-gateway",
    version,
    about = "An OpenAI-compatible gateway in front of OpenAI, Anthropic and local inference servers",
    long_about = "An OpenAI-compatible gateway in front of OpenAI, Anthropic and any OpenAI-compatible \
inference server (Ollama, vLLM, llama.cpp server, SGLang). One YAML file configures providers, \
endpoint pools, virtual API keys, routing and metrics; `check` lints it, `run` serves it.",
    after_help = "Examples:\n  llm-gateway check config.yaml\n  llm-gateway run config.yaml --address 127.0.0.1:8080\n  llm-gateway genkey --name alice --models 'gpt-*,claude-*'"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the gateway described by CONFIG.
    Run(RunArgs),
    /// Check config files and print every problem with its line and column.
    ///
    /// Exit status: 0 when clean (warnings allowed), 78 on errors (or on warnings with
    /// --deny-warnings), 66 when a file cannot be read, 2 on usage errors.
    Check(CheckArgs),
    /// Print a new virtual API key (`sk-gw-` + 64 hex digits from the OS random source).
    ///
    /// With --name, print a YAML entry ready to paste under `api_keys.keys`.
    Genkey(GenkeyArgs),
    /// List, add, remove, rotate or import the keys of a keys file (`api_keys.keys_file`).
    ///
    /// A running gateway picks the change up within a second. New keys are stored as
    /// `key_sha256` and printed once on standard output.
    Keys(KeysArgs),
    /// Show how a prompt is routed (every layer, every route's score, the decision), or
    /// evaluate a labelled set of prompts (`--eval FILE`; for CI with `--min-accuracy`).
    ///
    /// Exit status: 0, or 1 when the accuracy is below --min-accuracy; 78 for a config with
    /// errors, 66 for a file that cannot be read, 65 for a malformed evaluation file.
    Route(RouteArgs),
    /// Print the JSON Schema of the config file (for editors and CI).
    Schema,
    /// Print the version.
    Version,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Config file.
    #[arg(default_value = "config.yaml", env = "LLM_GATEWAY_CONFIG")]
    pub config: PathBuf,
    /// Listen address, overriding `listen` (e.g. `127.0.0.1:8080`, `:8080`).
    #[arg(long)]
    pub address: Option<String>,
    /// Serve through a zrok share (overrides `zrok.share.enabled`).
    #[arg(long)]
    pub zrok: bool,
    /// zrok share mode (overrides `zrok.share.mode`; does not enable sharing by itself).
    #[arg(long, value_name = "MODE", value_parser = ["public", "private"])]
    pub zrok_mode: Option<String>,
    /// Do not watch the config file for changes (SIGHUP still reloads it).
    #[arg(long)]
    pub no_watch: bool,
    /// Serving threads (default: one per CPU), each with its own runtime; a connection stays
    /// on the thread it was given. 1 serves everything on one thread (at most 1,024).
    #[arg(long, env = "LLM_GATEWAY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// Log format (level from RUST_LOG, default info; logs go to stderr).
    #[arg(long, value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Config files to check; `-` reads standard input.
    #[arg(default_value = "config.yaml", num_args = 1..)]
    pub configs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fail (exit 78) on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Do not embed the routes' examples (by default `check` does, as `run` would, so a
    /// missing or broken embedding model fails here, and warns about thresholds and routes
    /// the examples show to be wrong).
    #[arg(long)]
    pub no_embed: bool,
    /// Also print, per route, how its examples score (leave-one-out) against it and against
    /// the nearest other route.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Rendered like rustc: the source line, a caret, help.
    Text,
    /// One JSON document with every file and diagnostic.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct RouteArgs {
    /// `[CONFIG] PROMPT`, or `[CONFIG]` with --eval or --messages (CONFIG: config.yaml).
    #[arg(num_args = 0..=2)]
    pub args: Vec<String>,
    /// A request body (Chat, Messages or Responses JSON) to route instead of one prompt.
    #[arg(long, value_name = "FILE", conflicts_with = "eval")]
    pub messages: Option<PathBuf>,
    /// A labelled set: `route<TAB>prompt` lines (`#` comments; a prompt may start with
    /// `[tools] `, `[system=...] `, `[max_tokens=N] `).
    #[arg(long, value_name = "FILE")]
    pub eval: Option<PathBuf>,
    /// With --eval: exit 1 when the accuracy is below this (0 to 1).
    #[arg(long, value_name = "RATIO", requires = "eval", value_parser = ratio)]
    pub min_accuracy: Option<f64>,
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{text}` is not a number from 0 to 1")),
    }
}

#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// The keys file (created by `add` and `import` when missing).
    #[arg(long, short)]
    pub file: PathBuf,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Names, masked keys, users, limits and allowed globs.
    List,
    /// A new key for NAME (printed once), or an existing one with --key.
    ///
    /// Without NAME, asks on standard error for the user (also the key's name, made unique)
    /// and the key (an empty answer generates one), reading the answers from standard input.
    Add(KeysAddArgs),
    /// Remove NAME's key, or with --user every key of USER.
    Remove {
        #[arg(required_unless_present = "user")]
        name: Option<String>,
        /// Remove every key whose `user` is USER.
        #[arg(long, conflicts_with = "name")]
        user: Option<String>,
    },
    /// A new value for NAME's key (the old one stops working).
    Rotate { name: String },
    /// Add the keys of a users.json (`{"KEY": "USER", …}`, hcastc00/llm-gateway's format),
    /// stored hashed, one entry per key named after its user. Keys already present are skipped.
    Import {
        /// The users.json file.
        users_json: PathBuf,
    },
}

/// The largest `rpm`, `tpm` and `tokens_per_day` the compiler accepts.
const MAX_COUNT: u64 = 1_000_000_000_000;

#[derive(clap::Args, Debug)]
pub struct KeysAddArgs {
    /// Unique name of the key; without it, `add` asks for the user and the key.
    pub name: Option<String>,
    /// Register this existing key instead of making one (stored hashed, never printed).
    #[arg(long, requires = "name", value_name = "KEY")]
    pub key: Option<String>,
    /// The user the key belongs to (keys of one user share its limits and metrics).
    #[arg(long, requires = "name")]
    pub user: Option<String>,
    /// Comma-separated globs of allowed models.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Comma-separated globs of allowed routes.
    #[arg(long, value_delimiter = ',')]
    pub routes: Vec<String>,
    /// Requests per minute (per user when the key has one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub rpm: Option<u64>,
    /// Tokens (prompt + completion) per minute.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub tpm: Option<u64>,
    /// Tokens per day (UTC).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_COUNT))]
    pub tokens_per_day: Option<u64>,
    /// Requests the key may have served at once.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_concurrent: Option<u64>,
}

#[derive(clap::Args, Debug)]
pub struct GenkeyArgs {
    /// Name of the key: prints a YAML entry instead of the bare key.
    #[arg(long)]
    pub name: Option<String>,
    /// Comma-separated globs of allowed models (with --name).
    #[arg(long, requires = "name", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Comma-separated globs of allowed routes (with --name).
    #[arg(long, requires = "name", value_delimiter = ',')]
    pub routes: Vec<String>,
    /// Put only the key's SHA-256 in the YAML entry (`key_sha256:`); the key itself is
    /// printed once, on standard error, for the client.
    #[arg(long, requires = "name")]
    pub hash_only: bool,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && json_logs_asked() => {
            // `run --log-format json`: even a usage error is a JSON log line.
            let _flush = crate::logging::init(crate::logging::LogFormat::Json);
            tracing::error!(usage = %e.render(), "invalid command line: {}", first_line(&e.to_string()));
            return crate::exit::code(crate::exit::USAGE);
        }
        Err(e) => e.exit(),
    };
    // The one-shot commands end quietly when their reader goes away (`llm-gateway route … |
    // head`), as Unix tools do, instead of panicking on the write. Not `run`: a client that
    // hangs up must never end the server.
    if !matches!(cli.command, Command::Run(_)) {
        sigpipe::reset();
    }
    match cli.command {
        Command::Run(args) => crate::cmd::run::run(args),
        Command::Check(args) => crate::cmd::check::run(args),
        Command::Genkey(args) => crate::cmd::genkey::run(args),
        Command::Keys(args) => crate::cmd::keys::run(args),
        Command::Route(args) => crate::cmd::route::run(args),
        Command::Schema => {
            print!("{}", llm_gateway_compiler::schema::json());
            crate::exit::code(crate::exit::OK)
        }
        Command::Version => {
            println!("{}", crate::cmd::version());
            crate::exit::code(crate::exit::OK)
        }
    }
}

/// Whether the command line asks for JSON logs (looked at before it is parsed).
fn json_logs_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).any(|w| w[0] == "--log-format" && w[1] == "json") || args.iter().any(|a| a == "--log-format=json")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim_start_matches("error: ")
}
