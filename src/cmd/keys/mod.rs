//! `llm-gateway keys list|add|remove|rotate|import --file KEYS`: edit the keys file that
//! `api_keys.keys_file` names. Writes are atomic (a temporary file renamed over the old one),
//! so the running gateway, which watches the file, only ever sees whole versions. New keys
//! are stored as `key_sha256` and printed once; keys given to the CLI are never printed.

mod add;
mod file;
mod import;

use std::path::Path;
use std::process::ExitCode;

use llm_gateway_compiler::acl::hash_hex;

use crate::cli::{KeysArgs, KeysCommand};
use crate::cmd::genkey::new_key;
use crate::exit;
use file::{LIMITS, Record, Text};

pub fn run(args: KeysArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => exit::code(exit::OK),
        Err((code, message)) => {
            eprintln!("error: {message}");
            exit::code(code)
        }
    }
}

/// An exit code and the message for standard error.
type Failure = (u8, String);

fn execute(args: &KeysArgs) -> Result<(), Failure> {
    // Only `add` and `import` create the file; every other command needs it to exist.
    if !matches!(args.command, KeysCommand::Add(_) | KeysCommand::Import { .. }) && !args.file.exists() {
        return Err((
            exit::NO_INPUT,
            format!("{} does not exist (`llm-gateway keys --file {0} add NAME` creates it)", args.file.display()),
        ));
    }
    let records = file::read(&args.file)?;
    if records.iter().any(|r| r.credential.0 == "key")
        && let Some(warning) = crate::config::exposure(&args.file, "holds plaintext keys")
    {
        eprintln!("warning: {warning}");
    }
    match &args.command {
        KeysCommand::List => list(&records),
        KeysCommand::Add(add) => add::run(&args.file, records, add),
        KeysCommand::Remove { name, user } => remove(&args.file, records, name.as_deref(), user.as_deref()),
        KeysCommand::Rotate { name } => rotate(&args.file, records, name),
        KeysCommand::Import { users_json } => import::run(&args.file, records, users_json),
    }
}

fn list(records: &[Record]) -> Result<(), Failure> {
    for r in records {
        // Only a prefix of the hash, also for a plaintext key: a listing shows no secret.
        let hash = r.hash();
        let plain = if r.credential.0 == "key" { " (plaintext in the file)" } else { "" };
        let shown = format!("sha256:{}…{plain}", &hash[..12.min(hash.len())]);
        let values = |v: &[Text]| {
            if v.is_empty() { "*".to_owned() } else { v.iter().map(|t| t.value.as_str()).collect::<Vec<_>>().join(",") }
        };
        let limits: Vec<String> = LIMITS
            .iter()
            .zip(&r.limits)
            .filter_map(|(field, limit)| limit.as_ref().map(|l| format!("{field}:{}", l.value)))
            .collect();
        println!(
            "{}\t{shown}\tuser={}\tmodels={}\troutes={}\tlimits={}",
            r.name.value,
            r.user().unwrap_or("-"),
            values(&r.models),
            values(&r.routes),
            if limits.is_empty() { "-".to_owned() } else { limits.join(",") }
        );
    }
    Ok(())
}

fn remove(path: &Path, mut records: Vec<Record>, name: Option<&str>, user: Option<&str>) -> Result<(), Failure> {
    match (name, user) {
        (Some(name), _) => {
            let i = find(&records, name)?;
            records.remove(i);
            file::write(path, &records)?;
            eprintln!("removed `{name}`");
        }
        (None, Some(user)) => {
            // Users are compared as the gateway counts them: trimmed.
            let user = user.trim();
            let (gone, kept): (Vec<Record>, Vec<Record>) = records.into_iter().partition(|r| r.user() == Some(user));
            if gone.is_empty() {
                return Err((exit::USAGE, format!("no key has user `{user}`")));
            }
            file::write(path, &kept)?;
            let names: Vec<&str> = gone.iter().map(|r| r.name.value.as_str()).collect();
            let n = names.len();
            eprintln!("removed {n} key{} of user `{user}`: {}", if n == 1 { "" } else { "s" }, names.join(", "));
        }
        (None, None) => return Err((exit::USAGE, "name a key, or a user with --user".into())),
    }
    Ok(())
}

fn rotate(path: &Path, mut records: Vec<Record>, name: &str) -> Result<(), Failure> {
    let i = find(&records, name)?;
    let key = new_key().map_err(|e| (1, format!("the OS random source failed: {e}")))?;
    records[i].credential = ("key_sha256", Text::new(hash_hex(&key)));
    file::write(path, &records)?;
    println!("{key}");
    eprintln!("rotated `{name}`: the old key stops working when the gateway reloads (within a second)");
    Ok(())
}

fn find(records: &[Record], name: &str) -> Result<usize, Failure> {
    records.iter().position(|r| r.name.value == name).ok_or((exit::USAGE, format!("no key named `{name}`")))
}
