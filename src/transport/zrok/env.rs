//! The zrok environment on disk (`~/.zrok2` for zrok v2, `~/.zrok` for v1, or
//! `LLM_GATEWAY_ZROK_ROOT`): whether it is enabled, its account token, its OpenZiti identity,
//! and the controller's API endpoint, resolved as zrok resolves it. The token and the key
//! material are never logged (`Debug` hides them).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::transport::zrok::Flavour;

pub const NOT_ENABLED: &str = "zrok environment is not enabled; run 'zrok enable' first";

pub struct Environment {
    pub root: PathBuf,
    pub flavour: Flavour,
    pub api_endpoint: String,
    /// The environment's Ziti identity id (`envZId` in the REST API).
    pub ziti_identity: String,
    /// Account token, sent as `X-TOKEN`.
    pub token: String,
    /// `identities/environment.json`, validated.
    pub identity_file: PathBuf,
    /// The identity's controller URL (`ztAPI`).
    pub controller: String,
    /// The identity's CA bundle (PEM), for probing the controller before libziti sees it.
    pub ca_pem: String,
    pub default_namespace: String,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("root", &self.root)
            .field("flavour", &self.flavour)
            .field("api_endpoint", &self.api_endpoint)
            .field("ziti_identity", &self.ziti_identity)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct EnabledFile {
    zrok_token: String,
    ziti_identity: String,
    #[serde(default)]
    api_endpoint: Option<String>,
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    api_endpoint: Option<String>,
    #[serde(default)]
    default_namespace: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    v: String,
}

/// Finds and loads the enabled environment: `LLM_GATEWAY_ZROK_ROOT`, else `$HOME/.zrok2`,
/// else `$HOME/.zrok`. `var` reads the process environment (a parameter for tests).
pub fn load(var: &dyn Fn(&str) -> Option<String>) -> Result<Environment, String> {
    let candidates: Vec<(PathBuf, Flavour)> = match var("LLM_GATEWAY_ZROK_ROOT").filter(|v| !v.is_empty()) {
        Some(root) => {
            let root = PathBuf::from(root);
            // The override names the directory; its name tells the flavour as zrok's does.
            let v1 = root.file_name().is_some_and(|n| n == ".zrok");
            vec![(root, if v1 { Flavour::V1 } else { Flavour::V2 })]
        }
        None => {
            let home = PathBuf::from(var("HOME").unwrap_or_default());
            vec![(home.join(".zrok2"), Flavour::V2), (home.join(".zrok"), Flavour::V1)]
        }
    };
    let (root, flavour) =
        candidates.into_iter().find(|(root, _)| root.join("environment.json").is_file()).ok_or(NOT_ENABLED)?;
    let read = |name: &str| -> Result<Option<String>, String> {
        let path = root.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    let parse_err = |name: &str, e: serde_json::Error| format!("{} is malformed: {e}", root.join(name).display());
    if let Some(text) = read("metadata.json")? {
        let meta: Metadata = serde_json::from_str(&text).map_err(|e| parse_err("metadata.json", e))?;
        if meta.v != "v0.4" && !(flavour == Flavour::V1 && meta.v == "v0.3") {
            return Err(format!(
                "{} has layout version '{}', expected 'v0.4'",
                root.join("metadata.json").display(),
                meta.v
            ));
        }
    }
    let config: ConfigFile = match read("config.json")? {
        Some(text) => serde_json::from_str(&text).map_err(|e| parse_err("config.json", e))?,
        None => ConfigFile::default(),
    };
    let enabled_text = read("environment.json")?.ok_or(NOT_ENABLED)?;
    let enabled: EnabledFile = serde_json::from_str(&enabled_text).map_err(|e| parse_err("environment.json", e))?;
    if enabled.zrok_token.is_empty() || enabled.ziti_identity.is_empty() {
        return Err(format!(
            "{} lacks `zrok_token` or `ziti_identity`; run 'zrok enable' again",
            root.join("environment.json").display()
        ));
    }
    let (default_endpoint, endpoint_var, namespace_var) = match flavour {
        Flavour::V2 => ("https://api-v2.zrok.io", "ZROK2_API_ENDPOINT", "ZROK2_DEFAULT_NAMESPACE"),
        Flavour::V1 => ("https://api-v1.zrok.io", "ZROK_API_ENDPOINT", "ZROK_DEFAULT_FRONTEND"),
    };
    // Lowest to highest: built-in, config.json, the variable, the enabled environment's own.
    let api_endpoint = enabled
        .api_endpoint
        .clone()
        .filter(|e| !e.is_empty())
        .or_else(|| var(endpoint_var).filter(|e| !e.is_empty()))
        .or_else(|| config.api_endpoint.clone().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| default_endpoint.to_owned());
    let api_endpoint = match api_endpoint.strip_prefix("https://api.zrok.io") {
        Some(rest) => format!("{default_endpoint}{rest}"),
        None => api_endpoint,
    };
    let default_namespace = var(namespace_var)
        .filter(|n| !n.is_empty())
        .or(config.default_namespace.filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "public".into());
    let identity_file = root.join("identities").join("environment.json");
    let identity = validate_identity(&identity_file)?;
    Ok(Environment {
        root,
        flavour,
        api_endpoint: api_endpoint.trim_end_matches('/').to_owned(),
        ziti_identity: enabled.ziti_identity,
        token: enabled.zrok_token,
        identity_file,
        controller: identity.controller,
        ca_pem: identity.ca,
        default_namespace,
    })
}

/// What libziti needs from an identity file, checked before the library sees it: some
/// malformed identities crash it (an empty object, a missing key or controller URL).
pub struct Identity {
    pub controller: String,
    pub ca: String,
}

pub fn validate_identity(path: &Path) -> Result<Identity, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the zrok identity {shown}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("the zrok identity {shown} is not valid JSON: {e}"))?;
    let field = |pointer: &str| value.pointer(pointer).and_then(|v| v.as_str()).filter(|s| !s.trim().is_empty());
    let missing = |what: &str| format!("the zrok identity {shown} has no {what}; run 'zrok enable' again");
    let controller = field("/ztAPI").ok_or_else(|| missing("controller URL (`ztAPI`)"))?;
    if !controller.starts_with("https://") {
        return Err(format!("the zrok identity {shown} has a controller URL that is not https"));
    }
    field("/id/key").ok_or_else(|| missing("private key (`id.key`)"))?;
    field("/id/cert").ok_or_else(|| missing("certificate (`id.cert`)"))?;
    let ca = field("/id/ca").ok_or_else(|| missing("CA bundle (`id.ca`)"))?;
    let ca = ca.strip_prefix("pem:").unwrap_or(ca).to_owned();
    Ok(Identity { controller: controller.to_owned(), ca })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const IDENTITY: &str =
        r#"{"ztAPI":"https://127.0.0.1:1/edge/client/v1","id":{"key":"pem:K","cert":"pem:C","ca":"pem:A"}}"#;

    fn home(dir: &str, enabled: Option<&str>, identity: &str) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join(dir);
        std::fs::create_dir_all(root.join("identities")).unwrap();
        std::fs::write(root.join("metadata.json"), r#"{"v":"v0.4"}"#).unwrap();
        if let Some(e) = enabled {
            std::fs::write(root.join("environment.json"), e).unwrap();
        }
        std::fs::write(root.join("identities/environment.json"), identity).unwrap();
        home
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn v2_preferred_with_its_endpoint_rules() {
        let enabled = r#"{"zrok_token":"secret-token","ziti_identity":"envZ1"}"#;
        let h = home(".zrok2", Some(enabled), IDENTITY);
        let home_dir = h.path().to_str().unwrap();
        let e = load(&env(&[("HOME", home_dir)])).unwrap();
        assert_eq!(
            (e.flavour, e.api_endpoint.as_str(), e.ziti_identity.as_str()),
            (Flavour::V2, "https://api-v2.zrok.io", "envZ1")
        );
        assert_eq!(e.default_namespace, "public");
        let e = load(&env(&[("HOME", home_dir), ("ZROK2_API_ENDPOINT", "http://127.0.0.1:5/")])).unwrap();
        assert_eq!(e.api_endpoint, "http://127.0.0.1:5", "the variable beats the default");
        let with_own = r#"{"zrok_token":"t","ziti_identity":"z","api_endpoint":"https://api.zrok.io"}"#;
        std::fs::write(h.path().join(".zrok2/environment.json"), with_own).unwrap();
        let e = load(&env(&[("HOME", home_dir), ("ZROK2_API_ENDPOINT", "http://127.0.0.1:5")])).unwrap();
        assert_eq!(
            e.api_endpoint, "https://api-v2.zrok.io",
            "the enabled environment's endpoint wins, legacy host mapped"
        );
        assert!(!format!("{e:?}").contains("secret"), "the token is never printed");
    }

    #[test]
    fn v1_and_not_enabled_and_malformed() {
        let h = home(".zrok", Some(r#"{"zrok_token":"t","ziti_identity":"z"}"#), IDENTITY);
        let e = load(&env(&[("HOME", h.path().to_str().unwrap())])).unwrap();
        assert_eq!((e.flavour, e.api_endpoint.as_str()), (Flavour::V1, "https://api-v1.zrok.io"));

        let h = home(".zrok2", None, IDENTITY);
        assert_eq!(load(&env(&[("HOME", h.path().to_str().unwrap())])).unwrap_err(), NOT_ENABLED);
        assert_eq!(load(&env(&[])).unwrap_err(), NOT_ENABLED);

        let h = home(".zrok2", Some("{not json"), IDENTITY);
        let err = load(&env(&[("HOME", h.path().to_str().unwrap())])).unwrap_err();
        assert!(err.contains(".zrok2/environment.json is malformed"), "{err}");
    }

    #[test]
    fn identities_that_crash_libziti_are_refused_first() {
        let enabled = Some(r#"{"zrok_token":"t","ziti_identity":"z"}"#);
        for (identity, needle) in [
            ("{}", "no controller URL"),
            (r#"{"ztAPI":"https://c:1","id":{"cert":"C","ca":"A"}}"#, "no private key"),
            (r#"{"id":{"key":"K","cert":"C","ca":"A"}}"#, "no controller URL"),
            ("this is not json", "is not valid JSON"),
        ] {
            let h = home(".zrok2", enabled, identity);
            let err = load(&env(&[("HOME", h.path().to_str().unwrap())])).unwrap_err();
            assert!(err.contains(needle), "{identity}: {err}");
        }
    }
}
