//! `keys import users.json`: the keys of hcastc00/llm-gateway, whose users.json maps each API
//! key to a user name (`{"sk-abc123": "alice", "sk-xyz789": "bob"}`). Each key becomes an
//! entry with `user:` and only the key's hash, named after the user. Keys already in the file
//! are skipped, so importing the same users.json again changes nothing. The whole file is
//! checked before anything is written, and no message quotes a key.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::Read;
use std::path::Path;

use llm_gateway_compiler::acl::hash_hex;
use serde::de::{Deserializer, MapAccess, Visitor};

use super::Failure;
use super::add::{Names, check_key, check_user};
use super::file::{self, Record};
use crate::exit;

/// A users.json of 20,000 users is well under this; more is likely the wrong file.
const MAX_BYTES: u64 = 1 << 20;

pub(super) fn run(path: &Path, mut records: Vec<Record>, users_json: &Path) -> Result<(), Failure> {
    let pairs = load(users_json)?;
    let mut present: HashMap<String, usize> = records.iter().enumerate().map(|(i, r)| (r.hash(), i)).collect();
    let mut names = Names::new(&records);
    let (mut imported, mut skipped, mut users) = (0usize, 0usize, BTreeSet::new());
    for (n, (key, user)) in pairs.iter().enumerate() {
        let hash = hash_hex(key);
        if let Some(&i) = present.get(&hash) {
            let name = &records[i].name.value;
            eprintln!("skipped the key of `{user}` (entry {}): already in the file as `{name}`", n + 1);
            skipped += 1;
            continue;
        }
        present.insert(hash.clone(), records.len());
        records.push(Record::hashed(&names.unique(user), hash, Some(user)));
        users.insert(user.as_str());
        imported += 1;
    }
    // Nothing new: the file stays as it was, byte for byte.
    if imported > 0 {
        file::write(path, &records)?;
    }
    eprintln!("imported {imported} keys for {} users; skipped {skipped} already present", users.len());
    Ok(())
}

/// The (key, user) pairs of a users.json, in file order, each checked.
fn load(path: &Path) -> Result<Vec<(String, String)>, Failure> {
    let shown = path.display();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| (exit::NO_INPUT, format!("cannot read {shown}: {e}")))?;
    let bad = |why: String| (exit::DATA, format!("{shown}: {why}; nothing imported"));
    if bytes.len() as u64 > MAX_BYTES {
        return Err(bad(format!("larger than {} MiB, which no users.json should be", MAX_BYTES >> 20)));
    }
    let entries = parse(&bytes).map_err(&bad)?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, (key, value)) in entries.iter().enumerate() {
        let n = i + 1;
        let user = match value {
            serde_json::Value::String(user) => check_user(user).map_err(|why| bad(format!("entry {n}: {why}")))?,
            other => return Err(bad(format!("entry {n}: the user must be a string, not {}", kind(other)))),
        };
        if key.is_empty() {
            return Err(bad(format!("entry {n} (user `{user}`): the key is empty")));
        }
        check_key(key).map_err(|why| bad(format!("entry {n} (user `{user}`): {why}")))?;
        // The seed's Python would keep the last silently; which user was meant is a guess.
        if let Some(first) = seen.insert(key, n) {
            return Err(bad(format!("entries {first} and {n} have the same key (keep one)")));
        }
        out.push((key.clone(), user));
    }
    Ok(out)
}

/// The object's entries in file order (a JSON map type would sort them, and hide repeats).
fn parse(bytes: &[u8]) -> Result<Vec<(String, serde_json::Value)>, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let entries = (&mut de).deserialize_any(Entries).map_err(|e| describe(&e))?;
    de.end().map_err(|e| describe(&e))?;
    Ok(entries)
}

/// serde_json's syntax messages quote no input, but its type errors quote the value found —
/// perhaps a key — so those get a message of our own.
fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => "expected a JSON object of \"KEY\": \"USER\" entries".to_owned(),
        _ => format!("not valid JSON: {e}"),
    }
}

struct Entries;

impl<'de> Visitor<'de> for Entries {
    type Value = Vec<(String, serde_json::Value)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of \"KEY\": \"USER\" entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
            out.push(entry);
        }
        Ok(out)
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
