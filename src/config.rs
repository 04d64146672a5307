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
}

impl Loaded {
    pub fn errors(&self) -> usize {
        self.reports.iter().map(|r| r.diags.errors()).sum()
    }

    pub fn render(&self) -> String {
        self.reports.iter().map(FileReport::render).collect()
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
    let mut reports = vec![FileReport { name: name.to_owned(), source, diags }];
    let mut unreadable = None;
    let keys_file = plan.as_ref().and_then(|p| p.keys_file.clone());
    if let (Some(p), Some(file)) = (plan.as_mut(), keys_file) {
        let keys_path = keys_path(path, &file);
        let keys_name = keys_path.display().to_string();
        match std::fs::read_to_string(&keys_path) {
            Err(e) => {
                unreadable = Some(format!("cannot read the keys file {keys_name}: {e}"));
                plan = None;
            }
            Ok(keys_source) => {
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
    Loaded { plan, reports, unreadable }
}
