//! `llm-gateway keys list|add|remove|rotate --file KEYS`: edit the keys file that
//! `api_keys.keys_file` names. Writes are atomic (a temporary file renamed over the old one),
//! so the running gateway, which watches the file, only ever sees whole versions. New keys
//! are stored as `key_sha256` and printed once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use llm_gateway_compiler::ProcessEnv;
use llm_gateway_compiler::acl::hash_hex;
use llm_gateway_compiler::glob::Glob;

use crate::cli::{KeysArgs, KeysCommand};
use crate::cmd::genkey::{new_key, yaml_entry};
use crate::exit;

struct Record {
    name: String,
    /// `("key", plaintext)` as a person wrote it, or `("key_sha256", hex)`.
    credential: (&'static str, String),
    models: Vec<String>,
    routes: Vec<String>,
}

pub fn run(args: KeysArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => exit::code(exit::OK),
        Err((code, message)) => {
            eprintln!("error: {message}");
            exit::code(code)
        }
    }
}

type Failure = (u8, String);

fn execute(args: &KeysArgs) -> Result<(), Failure> {
    // Only `add` creates the file; every other command needs it to exist.
    if !matches!(args.command, KeysCommand::Add { .. }) && !args.file.exists() {
        return Err((
            exit::NO_INPUT,
            format!("{} does not exist (`llm-gateway keys --file {0} add NAME` creates it)", args.file.display()),
        ));
    }
    let mut records = read(&args.file)?;
    if records.iter().any(|r| r.credential.0 == "key")
        && let Some(warning) = crate::config::exposure(&args.file, "holds plaintext keys")
    {
        eprintln!("warning: {warning}");
    } else if let Some(warning) = crate::config::exposure(&args.file, "lists the API keys") {
        eprintln!("warning: {warning}");
    }
    let find = |records: &[Record], name: &str| records.iter().position(|r| r.name == name);
    match &args.command {
        KeysCommand::List => {
            for r in &records {
                let shown = match r.credential.0 {
                    "key_sha256" => format!("sha256:{}…", &r.credential.1[..12.min(r.credential.1.len())]),
                    _ => format!("{}…", r.credential.1.chars().take(8).collect::<String>()),
                };
                let list = |v: &[String]| if v.is_empty() { "*".to_owned() } else { v.join(",") };
                println!("{}\t{shown}\tmodels={}\troutes={}", r.name, list(&r.models), list(&r.routes));
            }
            return Ok(());
        }
        KeysCommand::Add { name, models, routes } => {
            if find(&records, name).is_some() {
                return Err((exit::USAGE, format!("a key named `{name}` exists; use `rotate` for a new value")));
            }
            for g in models.iter().chain(routes) {
                Glob::parse(g).map_err(|e| (exit::USAGE, format!("invalid glob `{g}`: {e}")))?;
            }
            let key = new_key().map_err(|e| (1, format!("the OS random source failed: {e}")))?;
            records.push(Record {
                name: name.clone(),
                credential: ("key_sha256", hash_hex(&key)),
                models: models.clone(),
                routes: routes.clone(),
            });
            write(&args.file, &records)?;
            println!("{key}");
            eprintln!("added `{name}`; the key above is shown once (the file keeps only its hash)");
        }
        KeysCommand::Remove { name } => {
            let i = find(&records, name).ok_or((exit::USAGE, format!("no key named `{name}`")))?;
            records.remove(i);
            write(&args.file, &records)?;
            eprintln!("removed `{name}`");
        }
        KeysCommand::Rotate { name } => {
            let i = find(&records, name).ok_or((exit::USAGE, format!("no key named `{name}`")))?;
            let key = new_key().map_err(|e| (1, format!("the OS random source failed: {e}")))?;
            records[i].credential = ("key_sha256", hash_hex(&key));
            write(&args.file, &records)?;
            println!("{key}");
            eprintln!("rotated `{name}`: the old key stops working when the gateway reloads (within a second)");
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<Record>, Failure> {
    let source = match crate::config::read_text(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err((exit::NO_INPUT, format!("cannot read {}: {e}", path.display()))),
    };
    let name = path.display().to_string();
    let file = llm_gateway_compiler::read_keys_file(&source, &ProcessEnv)
        .map_err(|d| (exit::CONFIG, format!("{name} has errors:\n{}", d.render(&name, &source))))?;
    let strings = |l: &Option<llm_gateway_compiler::raw::ApiKeyList>| -> Vec<String> {
        l.as_ref().map(|l| l.value.iter().map(|s| s.value.clone()).collect()).unwrap_or_default()
    };
    let mut out = Vec::new();
    for k in file.keys.iter().flat_map(|l| l.value.iter()) {
        let credential = match (&k.key, &k.key_sha256) {
            (Some(plain), _) => ("key", plain.value.0.expose().to_owned()),
            (None, Some(hex)) => ("key_sha256", hex.value.clone()),
            (None, None) => continue,
        };
        out.push(Record {
            name: k.name.as_ref().map(|n| n.value.clone()).unwrap_or_default(),
            credential,
            models: strings(&k.allowed_models),
            routes: strings(&k.allowed_routes),
        });
    }
    Ok(out)
}

fn write(path: &Path, records: &[Record]) -> Result<(), Failure> {
    let mut text = String::from("# Keys of llm-gateway, managed with `llm-gateway keys`.\n");
    text.push_str(if records.is_empty() { "keys: []\n" } else { "keys:\n" });
    for r in records {
        text.push_str(&yaml_entry(2, &r.name, (r.credential.0, &r.credential.1), &r.models, &r.routes));
    }
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let fail = |e: std::io::Error| (1, format!("cannot write {}: {e}", path.display()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}
