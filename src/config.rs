//! Loading a config file as `check`, `run` and reloads all do: compile it, then read and
//! compile its `api_keys.keys_file` (relative to the config) and add those keys.

use std::path::{Path, PathBuf};

use llm_gateway_compiler::{Diagnostics, Plan, ProcessEnv, compile, compile_keys_file};

/// The diagnostics of one file.
pub struct FileReport {
    pub name: String,
    pub source: String,
    pub diags: Diagnostics,
}

impl FileReport {
    pub fn render(&self) -> String {
        self.diags.render(&self.name, &self.source)
    }
}

/// A plan, or none when some file has errors; the reports of every file read either way.
pub struct Loaded {
    pub plan: Option<Plan>,
    pub reports: Vec<FileReport>,
    /// A file could not be read at all.
    pub unreadable: Option<String>,
    /// Warnings about files that hold secrets and that other users can read.
    pub exposed: Vec<String>,
}

impl Loaded {
    pub fn errors(&self) -> usize {
        self.reports.iter().map(|r| r.diags.errors()).sum()
    }

    pub fn render(&self) -> String {
        self.reports.iter().map(FileReport::render).collect()
    }

    /// Drops the files' text (it may hold plaintext keys), overwritten first.
    pub fn wipe_sources(&mut self) {
        for r in &mut self.reports {
            wipe(std::mem::take(&mut r.source).into_bytes());
        }
    }
}

/// Overwrites bytes that may hold a secret before freeing them (with `zeroize`, as the
/// compiler wipes its own copies, so the writes cannot be optimised away).
pub fn wipe(mut bytes: Vec<u8>) {
    zeroize::Zeroize::zeroize(&mut bytes);
}

/// A file's text, read into one buffer of its size (so no copy of it is left behind in a
/// freed buffer). A file over the compiler's size limit is refused before it is read; one
/// that is not UTF-8 or holds a NUL byte is an error that says where.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use llm_gateway_compiler::{MAX_SOURCE_BYTES, source_text};
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let size = std::fs::metadata(path)?.len();
    if size > MAX_SOURCE_BYTES as u64 {
        return Err(invalid(format!(
            "the file is {size} bytes; a config file may be at most {MAX_SOURCE_BYTES} bytes"
        )));
    }
    let bytes = std::fs::read(path)?;
    let problem =
        source_text(&bytes).err().map(|d| d.render(&path.display().to_string(), &String::from_utf8_lossy(&bytes)));
    match problem {
        None => String::from_utf8(bytes).map_err(|e| {
            wipe(e.into_bytes());
            invalid("the file is not UTF-8 text".into())
        }),
        Some(rendered) => {
            wipe(bytes);
            Err(invalid(rendered.trim_end().to_owned()))
        }
    }
}

/// Whether a config's text holds a secret in the clear: a virtual key's `key:` or a
/// provider's `api_key:` written out rather than taken from `${VAR}`.
pub fn holds_plaintext_secret(source: &str) -> bool {
    source.lines().any(|line| {
        let line = line.trim_start();
        let line = if line.starts_with('#') { "" } else { line.split(" #").next().unwrap_or_default() };
        ["key", "api_key", "share_token", "zrok_share_token"].iter().any(|field| {
            line.match_indices(field).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + field.len()..].trim_start();
                let value = after.strip_prefix(':').map(|v| v.trim_start().trim_start_matches(['"', '\'']));
                before.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | ',' | '-'))
                    && value.is_some_and(|v| !v.is_empty() && !v.starts_with('$') && !v.starts_with(['#', ',', '}']))
            })
        })
    })
}

/// A warning when `path`, which holds secrets (`what`), can be read by other users.
pub fn exposure(path: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        let file = path.display();
        format!("{file} {what} and other users can read it (mode {mode:04o}); run `chmod 600 {file}`")
    })
}

/// Logs [`Loaded::exposed`]-style warnings for a plan's files (after a reload).
pub fn warn_if_exposed(warnings: &[String]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}

/// The directory a file is in (`.` for a bare file name).
pub fn dir_of(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned()
}

/// Where the keys file of the config at `config` lives.
pub fn keys_path(config: &Path, keys_file: &str) -> PathBuf {
    dir_of(config).join(keys_file)
}

pub fn load(path: &Path, name: &str, source: String) -> Loaded {
    let (mut plan, diags) = match compile(&source, &ProcessEnv) {
        Ok(c) => (Some(c.plan), c.warnings),
        Err(d) => (None, d),
    };
    let mut exposed: Vec<String> = Vec::new();
    if path != Path::new("-") && holds_plaintext_secret(&source) {
        exposed.extend(exposure(path, "holds plaintext keys"));
    }
    let mut reports = vec![FileReport { name: name.to_owned(), source, diags }];
    let mut unreadable = None;
    let keys_file = plan.as_ref().and_then(|p| p.keys_file.clone());
    if let (Some(p), Some(file)) = (plan.as_mut(), keys_file) {
        let keys_path = keys_path(path, &file);
        let keys_name = keys_path.display().to_string();
        match read_text(&keys_path) {
            Err(e) => {
                unreadable = Some(format!("cannot read the keys file {keys_name}: {e}"));
                plan = None;
            }
            Ok(keys_source) => {
                // Hashes of generated keys are no secret: only plaintext keys need the file kept
                // private (a Kubernetes Secret mounted 0440 for the pod's group is then fine).
                if holds_plaintext_secret(&keys_source) {
                    exposed.extend(exposure(&keys_path, "holds plaintext keys"));
                }
                let (entries, diags) = match compile_keys_file(&keys_source, &ProcessEnv, p.routing.as_ref()) {
                    Ok((entries, warnings)) => (Some(entries), warnings),
                    Err(d) => (None, d),
                };
                reports.push(FileReport { name: keys_name.clone(), source: keys_source, diags });
                // A reload must see a change of either file.
                p.hash = llm_gateway_compiler::acl::hash_key(&format!("{}\n{}", p.hash_hex(), reports[1].source));
                match (entries, p.keys.as_mut()) {
                    (Some(entries), Some(table)) => {
                        if let Err(why) = table.extend(entries) {
                            unreadable = Some(format!("{keys_name}: {why}"));
                            plan = None;
                        }
                    }
                    _ => plan = None,
                }
            }
        }
    }
    Loaded { plan, reports, unreadable, exposed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_secrets_are_recognised() {
        for yes in [
            "api_keys:\n  keys:\n    - name: a\n      key: sk-gw-123\n",
            "keys:\n  - {name: a, key: \"sk-gw-123\"}\n",
            "providers:\n  openai:\n    api_key: sk-proj-abc\n",
            "providers:\n  local:\n    zrok_share_token: abc123\n",
        ] {
            assert!(holds_plaintext_secret(yes), "{yes}");
        }
        for no in [
            "keys:\n  - name: a\n    key_sha256: 0123\n",
            "providers:\n  openai:\n    api_key: ${OPENAI_API_KEY}\n",
            "providers:\n  openai:\n    api_key: \"${OPENAI_API_KEY}\"\n",
            "# key: old\nlisten: :8080\n",
            "routing:\n  routes:\n    - {name: monkey, model: x}\n",
        ] {
            assert!(!holds_plaintext_secret(no), "{no}");
        }
    }
}
