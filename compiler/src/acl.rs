//! Virtual API keys: looked up by the SHA-256 of the presented key (the plan never holds a
//! plaintext key), each with globs of the models and routes it may use.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::decode::{Cx, Spanned, suggest};
use crate::endpoints::non_empty;
use crate::glob::GlobList;
use crate::plan::RoutingPlan;
use crate::raw;
pub use crate::traffic::KeyLimits;

pub type KeyHash = [u8; 32];

pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Lowercase hex of a key's hash, as `key_sha256` takes it.
pub fn hash_hex(key: &str) -> String {
    hash_key(key).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_sha256(hex: &str) -> Option<KeyHash> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Debug)]
pub struct KeyTable {
    by_hash: HashMap<KeyHash, usize>,
    keys: Vec<KeyEntry>,
}

pub struct KeyEntry {
    pub name: String,
    /// Who the key belongs to; keys sharing a user share its counters.
    pub user: Option<String>,
    /// `user:<user>` or `key:<name>`: whom limits and slots count for. Prefixed, so a key
    /// named like another key's user does not share that user's counters.
    subject: String,
    pub limits: KeyLimits,
    /// `None`: every model.
    models: Option<GlobList>,
    /// `None`: every route.
    routes: Option<GlobList>,
}

/// Names and users are not secrets, but a careless one may be a URL with a password in it:
/// shown masked, like every URL in diagnostics.
impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::mask::mask_urls;
        f.debug_struct("KeyEntry")
            .field("name", &mask_urls(&self.name))
            .field("user", &self.user.as_deref().map(mask_urls))
            .field("limits", &self.limits)
            .field("models", &self.models)
            .field("routes", &self.routes)
            .finish()
    }
}

impl KeyEntry {
    pub fn new(name: String, models: Option<GlobList>, routes: Option<GlobList>) -> Self {
        Self::with_owner(name, None, KeyLimits::default(), models, routes)
    }

    pub fn with_owner(
        name: String,
        user: Option<String>,
        limits: KeyLimits,
        models: Option<GlobList>,
        routes: Option<GlobList>,
    ) -> Self {
        let subject = match &user {
            Some(u) => format!("user:{u}"),
            None => format!("key:{name}"),
        };
        Self { name, user, subject, limits, models, routes }
    }

    /// Whom limits and slots count this key's requests for: its user, else itself.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|g| g.matches(model))
    }

    pub fn allows_route(&self, route: &str) -> bool {
        self.routes.as_ref().is_none_or(|g| g.matches(route))
    }
}

impl KeyTable {
    pub fn new(entries: Vec<(KeyHash, KeyEntry)>) -> Self {
        let mut by_hash = HashMap::with_capacity(entries.len());
        let mut keys = Vec::with_capacity(entries.len());
        for (hash, entry) in entries {
            by_hash.insert(hash, keys.len());
            keys.push(entry);
        }
        Self { by_hash, keys }
    }

    /// The key a client presented, if it is one of ours. Hashing first makes the lookup
    /// time independent of how much of the key matches.
    pub fn lookup(&self, presented: &str) -> Option<&KeyEntry> {
        self.by_hash.get(&hash_key(presented)).map(|&i| &self.keys[i])
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Adds the keys of a keys file; a name or key already present is refused.
    pub fn extend(&mut self, more: Vec<(KeyHash, KeyEntry)>) -> Result<(), String> {
        let mut names: std::collections::HashSet<String> = self.keys.iter().map(|k| k.name.clone()).collect();
        for (hash, entry) in more {
            if self.by_hash.contains_key(&hash) {
                return Err(format!("key `{}` is also in the config", entry.name));
            }
            if !names.insert(entry.name.clone()) {
                return Err(format!("key name `{}` is also in the config", entry.name));
            }
            self.by_hash.insert(hash, self.keys.len());
            self.keys.push(entry);
        }
        Ok(())
    }

    /// Every key.
    pub fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        self.keys.iter()
    }

    /// The names of every key.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.name.as_str())
    }

    /// The hashes of every key (to tell which keys a reload adds or removes).
    pub fn hashes(&self) -> Vec<KeyHash> {
        self.by_hash.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Compiles `api_keys`. `None` when authentication is off.
pub(crate) fn compile(cx: &mut Cx, raw: &Spanned<raw::ApiKeys>, routing: Option<&RoutingPlan>) -> Option<KeyTable> {
    let list: &[Spanned<raw::ApiKey>] = raw.keys.as_ref().map(|l| l.value.as_slice()).unwrap_or_default();
    let enabled = raw.enabled.as_ref().is_some_and(|e| e.value);
    let has_file = crate::endpoints::non_empty(&raw.keys_file).is_some();
    if enabled && list.is_empty() && !has_file {
        cx.at("api_keys", |cx| {
            cx.error_help(raw.span.clone(), "`api_keys.enabled` is true but there are no keys", "add a key (`llm-gateway genkey --name NAME`), or set `enabled: false`; openziti/llm-gateway silently left the gateway open here")
        });
    }
    let entries = entries(cx, "api_keys.keys", list, routing);
    enabled.then(|| KeyTable::new(entries))
}

/// Compiles a list of key entries (the config's `api_keys.keys`, or a keys file's `keys`).
pub(crate) fn entries(
    cx: &mut Cx,
    prefix: &str,
    list: &[Spanned<raw::ApiKey>],
    routing: Option<&RoutingPlan>,
) -> Vec<(KeyHash, KeyEntry)> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut hashes: HashMap<KeyHash, usize> = HashMap::new();
    let mut users: HashMap<String, (usize, crate::traffic::KeyLimits)> = HashMap::new();
    let mut entries = Vec::new();
    for (i, k) in list.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        let name = match non_empty(&k.name) {
            Some(n) => {
                if let Some(first) = names.insert(n.value.clone(), i) {
                    cx.at(&format!("{path}.name"), |cx| {
                        cx.error(n.span.clone(), format!("duplicate key name `{}` (also {prefix}[{first}])", n.value))
                    });
                }
                n.value.clone()
            }
            None => {
                cx.at(&path, |cx| {
                    cx.error_help(k.span.clone(), "key has no `name`", "names identify keys in logs and metrics")
                });
                String::new()
            }
        };
        let hash = match (&k.key, &k.key_sha256) {
            (Some(secret), None) if !secret.value.0.is_empty() => {
                if secret.value.0.expose().len() < 16 {
                    cx.at(&format!("{path}.key"), |cx| {
                        cx.warn(
                            secret.span.clone(),
                            "key is shorter than 16 characters and easy to guess",
                            Some("use `llm-gateway genkey`".into()),
                        )
                    });
                }
                Some((hash_key(secret.value.0.expose()), secret.span.clone(), "key"))
            }
            (None, Some(hex)) => match parse_sha256(&hex.value) {
                Some(hash) => Some((hash, hex.span.clone(), "key_sha256")),
                None => {
                    cx.at(&format!("{path}.key_sha256"), |cx| {
                        cx.error_help(
                            hex.span.clone(),
                            "`key_sha256` must be 64 hexadecimal digits",
                            "write the SHA-256 of the key, e.g. from `llm-gateway genkey --name NAME --hash-only`",
                        )
                    });
                    None
                }
            },
            (Some(_), Some(hex)) => {
                cx.at(&format!("{path}.key_sha256"), |cx| {
                    cx.error_help(hex.span.clone(), "`key` and `key_sha256` together", "keep one of them")
                });
                None
            }
            _ => {
                cx.at(&path, |cx| {
                    cx.error_help(
                        k.span.clone(),
                        format!("key `{name}` has no `key` value"),
                        "add `key: sk-gw-...` from `llm-gateway genkey`, or `key_sha256:`",
                    )
                });
                None
            }
        };
        let hash = hash.map(|(hash, span, field)| {
            if let Some(first) = hashes.insert(hash, i) {
                cx.at(&format!("{path}.{field}"), |cx| {
                    cx.error_help(
                        span,
                        format!("same key value as {prefix}[{first}]"),
                        "every key must be unique; make a new one with `llm-gateway genkey`",
                    )
                });
            }
            hash
        });
        let models = globs(cx, &format!("{path}.allowed_models"), k.allowed_models.as_ref(), None);
        if k.allowed_routes.as_ref().is_some_and(|r| !r.value.is_empty())
            && routing.is_none()
            && let Some(r) = &k.allowed_routes
        {
            cx.at(&format!("{path}.allowed_routes"), |cx| {
                cx.warn(r.span.clone(), "`allowed_routes` has no effect without a `routing` section", None)
            });
        }
        let route_names: Vec<&str> =
            routing.map(|r| r.routes.iter().map(|r| r.name.as_str()).collect()).unwrap_or_default();
        let routes = globs(
            cx,
            &format!("{path}.allowed_routes"),
            k.allowed_routes.as_ref(),
            routing.map(|_| route_names.as_slice()),
        );
        let user = crate::traffic::user(cx, &path, k);
        let limits = crate::traffic::key_limits(cx, &path, k);
        if let Some(u) = &user {
            match users.get(u) {
                Some((first, theirs)) if *theirs != limits => cx.at(&path, |cx| {
                    cx.warn(
                        k.span.clone(),
                        format!("keys of user `{u}` have different limits (see {prefix}[{first}])"),
                        Some("the user's requests are counted together, but each is checked against its own key's limits: give them the same".into()),
                    )
                }),
                Some(_) => {}
                None => {
                    users.insert(u.clone(), (i, limits));
                }
            }
        }
        if let Some(hash) = hash {
            entries.push((hash, KeyEntry::with_owner(name, user, limits, models, routes)));
        }
    }
    entries
}

/// Compiles a list of globs; with `names`, a pattern without metacharacters must be one of them.
fn globs(
    cx: &mut Cx,
    path: &str,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    names: Option<&[&str]>,
) -> Option<GlobList> {
    let mut out = Vec::new();
    for (j, p) in list.map(|l| l.value.as_slice()).unwrap_or_default().iter().enumerate() {
        let item = format!("{path}[{j}]");
        let Some(glob) = cx.glob(&item, &p.value, p.span.clone()) else { continue };
        if let Some(names) = names
            && glob.is_literal()
            && !names.contains(&p.value.as_str())
        {
            let help = match suggest(&p.value, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "name a route from `routing.routes`".to_owned(),
            };
            cx.at(&item, |cx| cx.error_help(p.span.clone(), format!("unknown route `{}`", p.value), help));
        }
        out.push(glob);
    }
    GlobList::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> Option<GlobList> {
        GlobList::new(patterns.iter().map(|p| crate::glob::Glob::parse(p).unwrap()).collect())
    }

    fn entry(models: &[&str], routes: &[&str]) -> KeyEntry {
        KeyEntry::new("k".into(), list(models), list(routes))
    }

    #[test]
    fn any_glob_of_the_list_allows() {
        let e = entry(&["gpt-*", "meta-llama/*"], &[]);
        assert!(e.allows_model("gpt-4o") && e.allows_model("meta-llama/Llama-3.1-8B"));
        assert!(!e.allows_model("o1-mini"));
    }

    #[test]
    fn empty_lists_allow_everything() {
        let e = entry(&[], &[]);
        assert!(e.allows_model("anything/at:all"));
        assert!(e.allows_route("any"));
        let r = entry(&[], &["cod*", "general"]);
        assert!(r.allows_route("coding") && r.allows_route("general"));
        assert!(!r.allows_route("fast"));
    }

    #[test]
    fn sha256_hex_round_trips() {
        let hex = hash_hex("sk-gw-1");
        assert_eq!(parse_sha256(&hex), Some(hash_key("sk-gw-1")));
        assert_eq!(parse_sha256(&hex.to_uppercase()), Some(hash_key("sk-gw-1")));
        assert_eq!(parse_sha256(&hex[1..]), None);
        assert_eq!(parse_sha256(&"g".repeat(64)), None);
    }

    #[test]
    fn debug_masks_a_url_password_in_a_name_or_user() {
        let e = KeyEntry::with_owner(
            "http://u:hunter2pw@x".into(),
            Some("http://u:hunter2pw@y".into()),
            KeyLimits::default(),
            None,
            None,
        );
        let shown = format!("{e:?}");
        assert!(!shown.contains("hunter2pw") && shown.contains("KeyEntry"), "{shown}");
    }

    #[test]
    fn lookup_is_by_hash() {
        let table = KeyTable::new(vec![(hash_key("sk-gw-1"), entry(&[], &[]))]);
        assert_eq!(table.lookup("sk-gw-1").map(|e| e.name.as_str()), Some("k"));
        assert!(table.lookup("sk-gw-2").is_none());
        assert!(!format!("{table:?}").contains("sk-gw-1"));
    }
}
