//! The keys file as records: read with every field of an entry, written back atomically, and
//! checked before it replaces the old file — it must read back as what was meant and load in
//! the gateway, so an edit never silently drops or changes another key.

use std::ops::Range;
use std::path::{Path, PathBuf};

use llm_gateway_compiler::acl::hash_hex;
use llm_gateway_compiler::{MAX_SOURCE_BYTES, ProcessEnv};

use super::Failure;
use crate::cmd::genkey::{quoted, yaml_entry, yaml_list, yaml_string};
use crate::exit;

/// A field's value as the gateway reads it, and the YAML text that writes it back. (No `Debug`:
/// a plaintext key is one of these.)
#[derive(Clone)]
pub(super) struct Text {
    pub value: String,
    yaml: String,
}

/// Texts are equal when they read as the same value, however they are written.
impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Text {
    /// A value the CLI sets.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        Self { yaml: yaml_string(&value), value }
    }

    pub fn number(n: u64) -> Self {
        Self { value: n.to_string(), yaml: n.to_string() }
    }

    /// A value read from `source` at `span`. One written with `${…}` goes back as written, so a
    /// variable stays a variable and its value (often a key) never lands in the file.
    fn read(value: String, source: &str, span: &Range<usize>, number: bool) -> Result<Self, String> {
        let written = source.get(span.clone()).unwrap_or_default();
        let yaml = if !written.contains("${") {
            if number { value.clone() } else { yaml_string(&value) }
        } else if written.contains(['\n', '\r']) {
            return Err("uses `${…}` over several lines".into());
        } else if written.starts_with(['"', '\'']) {
            written.to_owned()
        } else {
            // A plain scalar's text is literal, so quoted it reads the same — in a flow list too,
            // where a bare `{` would not.
            quoted(written)
        };
        Ok(Self { value, yaml })
    }
}

/// The limits of an entry, in the order they are written.
pub(super) const LIMITS: [&str; 4] = ["rpm", "tpm", "tokens_per_day", "max_concurrent"];

#[derive(Clone, PartialEq)]
pub(super) struct Record {
    pub name: Text,
    /// `key` (the plaintext, as a person wrote it) or `key_sha256`, kept as it was.
    pub credential: (&'static str, Text),
    pub user: Option<Text>,
    pub models: Vec<Text>,
    pub routes: Vec<Text>,
    /// In [`LIMITS`] order.
    pub limits: [Option<Text>; 4],
}

impl Record {
    /// A new entry holding only the key's hash.
    pub fn hashed(name: &str, hash: String, user: Option<&str>) -> Self {
        Record {
            name: Text::new(name),
            credential: ("key_sha256", Text::new(hash)),
            user: user.map(Text::new),
            models: Vec::new(),
            routes: Vec::new(),
            limits: Default::default(),
        }
    }

    /// The SHA-256 (lowercase hex) that identifies the key, however it is stored.
    pub fn hash(&self) -> String {
        match self.credential.0 {
            "key" => hash_hex(&self.credential.1.value),
            _ => self.credential.1.value.to_ascii_lowercase(),
        }
    }

    /// The user as the gateway counts it (trimmed).
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.value.trim())
    }

    fn yaml(&self) -> String {
        let mut fields = vec![("name", self.name.yaml.clone()), (self.credential.0, self.credential.1.yaml.clone())];
        if let Some(user) = &self.user {
            fields.push(("user", user.yaml.clone()));
        }
        for (field, list) in [("allowed_models", &self.models), ("allowed_routes", &self.routes)] {
            if !list.is_empty() {
                fields.push((field, yaml_list(list.iter().map(|t| t.yaml.as_str()))));
            }
        }
        for (field, limit) in LIMITS.iter().zip(&self.limits) {
            if let Some(limit) = limit {
                fields.push((field, limit.yaml.clone()));
            }
        }
        yaml_entry(2, &fields)
    }
}

/// The records of the keys file at `path`; none when it does not exist.
pub(super) fn read(path: &Path) -> Result<Vec<Record>, Failure> {
    let source = match crate::config::read_text(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err((exit::NO_INPUT, format!("cannot read {}: {e}", path.display()))),
    };
    let name = path.display().to_string();
    parse(&source).map_err(|e| match e {
        Unreadable::Errors(d) => (exit::CONFIG, format!("{name} has errors:\n{}", d.render(&name, &source))),
        Unreadable::Entry(problem) => {
            (exit::CONFIG, format!("{name}: {problem}; fix that by hand first (the keys CLI could not write it back)"))
        }
    })
}

enum Unreadable {
    Errors(llm_gateway_compiler::Diagnostics),
    /// An entry the records cannot hold as it is.
    Entry(String),
}

fn parse(source: &str) -> Result<Vec<Record>, Unreadable> {
    let file = llm_gateway_compiler::read_keys_file(source, &ProcessEnv).map_err(Unreadable::Errors)?;
    let mut out = Vec::new();
    for (i, entry) in file.keys.iter().flat_map(|l| l.value.iter()).enumerate() {
        // No `..`: a field added to `ApiKey` fails to compile here rather than being dropped by
        // the next edit of the file.
        let llm_gateway_compiler::raw::ApiKey {
            name,
            key,
            key_sha256,
            allowed_models,
            allowed_routes,
            user,
            rpm,
            tpm,
            tokens_per_day,
            max_concurrent,
        } = &entry.value;
        let at = |field: &str, value: String, span: &Range<usize>, number: bool| {
            Text::read(value, source, span, number).map_err(|why| Unreadable::Entry(format!("keys[{i}].{field} {why}")))
        };
        let string = |field: &str, f: Option<(&str, &Range<usize>)>| {
            f.map(|(value, span)| at(field, value.to_owned(), span, false)).transpose()
        };
        let list = |field: &str, items: Option<Vec<(&str, &Range<usize>)>>| -> Result<Vec<Text>, Unreadable> {
            items.unwrap_or_default().into_iter().map(|(v, span)| at(field, v.to_owned(), span, false)).collect()
        };
        let number = |field: &str, f: Option<(i64, &Range<usize>)>| {
            f.map(|(value, span)| at(field, value.to_string(), span, true)).transpose()
        };
        let credential = match (key, key_sha256) {
            (Some(k), None) => ("key", at("key", k.value.0.expose().to_owned(), &k.span, false)?),
            (None, Some(h)) => ("key_sha256", at("key_sha256", h.value.clone(), &h.span, false)?),
            _ => return Err(Unreadable::Entry(format!("keys[{i}] needs exactly one of `key` and `key_sha256`"))),
        };
        let name = string("name", name.as_ref().map(|n| (n.value.as_str(), &n.span)))?
            .ok_or_else(|| Unreadable::Entry(format!("keys[{i}] has no `name`")))?;
        out.push(Record {
            name,
            credential,
            user: string("user", user.as_ref().map(|u| (u.value.as_str(), &u.span)))?,
            models: list("allowed_models", items(allowed_models))?,
            routes: list("allowed_routes", items(allowed_routes))?,
            limits: [
                number("rpm", rpm.as_ref().map(|n| (n.value, &n.span)))?,
                number("tpm", tpm.as_ref().map(|n| (n.value, &n.span)))?,
                number("tokens_per_day", tokens_per_day.as_ref().map(|n| (n.value, &n.span)))?,
                number("max_concurrent", max_concurrent.as_ref().map(|n| (n.value, &n.span)))?,
            ],
        });
    }
    Ok(out)
}

fn items(list: &Option<llm_gateway_compiler::raw::ApiKeyList>) -> Option<Vec<(&str, &Range<usize>)>> {
    list.as_ref().map(|l| l.value.iter().map(|s| (s.value.as_str(), &s.span)).collect())
}

/// Replaces the keys file with `records`, atomically (a temporary file renamed over it) so the
/// gateway watching it only ever reads whole versions. The new file keeps the old one's owner,
/// group and mode (0600 for a new file), so the service that reads it still can after an edit
/// by another user (root); when the owner cannot be kept, nothing is written.
pub(super) fn write(path: &Path, records: &[Record]) -> Result<(), Failure> {
    let mut text = String::from("# Keys of llm-gateway, managed with `llm-gateway keys`.\n");
    text.push_str(if records.is_empty() { "keys: []\n" } else { "keys:\n" });
    for r in records {
        text.push_str(&r.yaml());
    }
    verify(path, &text, records)?;
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let fail = |e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        (1, format!("cannot write {}: {e}", path.display()))
    };
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(fail)?;
        if let Ok(old) = std::fs::metadata(path) {
            let mine = f.metadata().map_err(fail)?;
            // A file the service could no longer read would be worse than no edit at all.
            if (old.uid(), old.gid()) != (mine.uid(), mine.gid())
                && let Err(e) = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()))
            {
                let _ = std::fs::remove_file(&tmp);
                return Err((
                    1,
                    format!(
                        "cannot keep {}'s owner {}:{} ({e}), so it is left as it was: run this as that user or as root",
                        path.display(),
                        old.uid(),
                        old.gid()
                    ),
                ));
            }
            f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o777)).map_err(fail)?;
        }
        f.write_all(text.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The new text must read back as `records` (else the writer got a value wrong, and another
/// key would silently change) and load in the gateway (else the change would not take effect).
fn verify(path: &Path, text: &str, records: &[Record]) -> Result<(), Failure> {
    let name = path.display().to_string();
    if text.len() > MAX_SOURCE_BYTES {
        return Err((
            1,
            format!("{name} would be {} bytes, over the {MAX_SOURCE_BYTES} a keys file may have", text.len()),
        ));
    }
    if !matches!(parse(text), Ok(back) if back == records) {
        return Err((1, format!("internal error: the new {name} would not read back as intended; nothing written")));
    }
    match llm_gateway_compiler::compile_keys_file(text, &ProcessEnv, None) {
        Ok(_) => Ok(()),
        Err(d) => {
            let shown = format!("{name} (as it would be)");
            Err((
                exit::CONFIG,
                format!("{name} would have errors, so nothing was written:\n{}", d.render(&shown, text)),
            ))
        }
    }
}
