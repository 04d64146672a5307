//! `keys add`: a new key, an existing one (`--key`), or — without NAME — the answers to two
//! questions read line by line from standard input, so `add` works piped as well as typed
//! (hcastc00/llm-gateway's `users.sh add` asks the same way).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Read};
use std::path::Path;

use llm_gateway_compiler::acl::hash_hex;
use llm_gateway_compiler::glob::Glob;

use super::Failure;
use super::file::{self, Record, Text};
use crate::cli::KeysAddArgs;
use crate::cmd::genkey::new_key;
use crate::exit;

pub(super) fn run(path: &Path, mut records: Vec<Record>, args: &KeysAddArgs) -> Result<(), Failure> {
    for g in args.models.iter().chain(&args.routes) {
        Glob::parse(g).map_err(|e| (exit::USAGE, format!("invalid glob `{g}`: {e}")))?;
    }
    let usage = |why: String| (exit::USAGE, why);
    let (name, user, key) = match &args.name {
        Some(name) => {
            if records.iter().any(|r| r.name.value == *name) {
                return Err(usage(format!("a key named `{name}` exists; use `rotate` for a new value")));
            }
            let user = args.user.as_deref().map(check_user).transpose().map_err(usage)?;
            (name.clone(), user, args.key.clone())
        }
        None => ask(&records)?,
    };
    let (key, generated) = match key {
        Some(key) => {
            check_key(&key).map_err(usage)?;
            (key, false)
        }
        None => (new_key().map_err(|e| (1, format!("the OS random source failed: {e}")))?, true),
    };
    let hash = hash_hex(&key);
    if let Some(other) = records.iter().find(|r| r.hash() == hash) {
        return Err(usage(format!("that key is already in the file, as `{}`", other.name.value)));
    }
    let mut record = Record::hashed(&name, hash, user.as_deref());
    record.models = args.models.iter().map(Text::new).collect();
    record.routes = args.routes.iter().map(Text::new).collect();
    record.limits = [args.rpm, args.tpm, args.tokens_per_day, args.max_concurrent].map(|l| l.map(Text::number));
    records.push(record);
    file::write(path, &records)?;
    if generated {
        println!("{key}");
        eprintln!("added `{name}`; the key above is shown once (the file keeps only its hash)");
    } else {
        eprintln!("added `{name}` with the key given (the file keeps only its hash)");
    }
    Ok(())
}

/// The interactive form: the user (also the key's name, made unique) and the key (none:
/// generate one). Nothing is written unless both questions are answered.
fn ask(records: &[Record]) -> Result<(String, Option<String>, Option<String>), Failure> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    // A terminal echoes the Enter that ends an answer; piped answers need the line end here.
    let piped = !stdin.is_terminal();
    let mut input = stdin.lock();
    let mut ask = |question: &str, what: &str| {
        eprint!("{question}: ");
        let got = answer(&mut input, what);
        if piped {
            eprintln!();
        }
        got
    };
    let user = check_user(&ask("User name", "the user name")?)
        .map_err(|why| (exit::USAGE, format!("{why}; nothing written")))?;
    let key = ask("Key (empty: generate one)", "the key")?.trim().to_owned();
    let name = Names::new(records).unique(&user);
    Ok((name, Some(user), (!key.is_empty()).then_some(key)))
}

/// The longest answer read: a key or a user name, with room to spare.
const MAX_ANSWER: usize = 4096;

/// One line of `input` without its line end. End of input is an error: an unanswered question
/// must not turn into a default.
fn answer(input: &mut impl BufRead, what: &str) -> Result<String, Failure> {
    let fail = |why: String| (exit::USAGE, format!("{why}; nothing written"));
    let mut line = Vec::new();
    match input.by_ref().take(MAX_ANSWER as u64 + 1).read_until(b'\n', &mut line) {
        Err(e) => return Err(fail(format!("cannot read {what} from standard input: {e}"))),
        Ok(0) => return Err(fail(format!("no answer for {what} (end of input)"))),
        Ok(_) if line.len() > MAX_ANSWER => return Err(fail(format!("the answer for {what} is too long"))),
        Ok(_) => {}
    }
    while line.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| fail(format!("the answer for {what} is not UTF-8 text")))
}

/// A user name, trimmed (as the gateway counts it). Empty would merge unrelated keys, and
/// control characters would garble logs and `list`.
pub(super) fn check_user(user: &str) -> Result<String, String> {
    let user = user.trim();
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    if user.chars().any(char::is_control) {
        return Err("the user name has a control character".into());
    }
    if user.chars().count() > MAX_USER {
        return Err(format!("the user name is longer than {MAX_USER} characters"));
    }
    Ok(user.to_owned())
}

const MAX_USER: usize = 256;

/// A key to register. Clients send it in an HTTP header, which the gateway reads only as
/// visible ASCII; the messages never quote it.
pub(super) fn check_key(key: &str) -> Result<(), String> {
    if key.chars().count() < MIN_KEY {
        return Err(format!("the key is shorter than {MIN_KEY} characters"));
    }
    if key.len() > MAX_KEY {
        return Err(format!("the key is longer than {MAX_KEY} characters"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the key may hold only visible ASCII characters (no spaces or control characters)".into());
    }
    Ok(())
}

const MIN_KEY: usize = 8;
const MAX_KEY: usize = 1024;

/// Key names in use, handing out `alice`, `alice-2`, `alice-3`, … for a user.
pub(super) struct Names {
    taken: HashSet<String>,
    /// The next suffix to try per user, so importing many keys of one user stays linear.
    next: HashMap<String, u64>,
}

impl Names {
    pub fn new(records: &[Record]) -> Self {
        Names { taken: records.iter().map(|r| r.name.value.clone()).collect(), next: HashMap::new() }
    }

    pub fn unique(&mut self, user: &str) -> String {
        if self.taken.insert(user.to_owned()) {
            return user.to_owned();
        }
        let n = self.next.entry(user.to_owned()).or_insert(2);
        loop {
            let name = format!("{user}-{n}");
            *n += 1;
            if self.taken.insert(name.clone()) {
                return name;
            }
        }
    }
}
