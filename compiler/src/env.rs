//! `${VAR}` and `${VAR:-default}` expansion, applied to every string value of the config.
//!
//! Only the braced form is expanded (a `$` elsewhere is literal, so passwords and regexes
//! survive); `$${` writes a literal `${`.

use std::collections::HashMap;

/// Where `${VAR}` values come from: the process environment at run time, a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The result of expanding one string.
#[derive(Debug, PartialEq)]
pub struct Expanded {
    pub value: String,
    /// Variables that were unset and had no default; each expanded to "".
    pub unset: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub enum ExpandError {
    Unterminated,
    BadName(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unterminated => f.write_str("`${` without a closing `}`"),
            ExpandError::BadName(n) => write!(
                f,
                "`{n}` is not a valid environment variable name (letters, digits, `_`; not starting with a digit)"
            ),
        }
    }
}

pub fn expand(text: &str, env: &dyn Env) -> Result<Expanded, ExpandError> {
    if !text.contains("${") {
        return Ok(Expanded { value: text.to_owned(), unset: Vec::new() });
    }
    let mut value = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find("${") {
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            value.push_str(&rest[..pos - 1]);
            value.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        value.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after.find('}').ok_or(ExpandError::Unterminated)?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if !valid_name(name) {
            return Err(ExpandError::BadName(name.to_owned()));
        }
        match (env.var(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => value.push_str(&v),
            (None, Some(d)) => value.push_str(d),
            (None, None) => unset.push(name.to_owned()),
        }
        rest = &after[end + 1..];
    }
    value.push_str(rest);
    Ok(Expanded { value, unset })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        [("A", "alpha"), ("EMPTY", "")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    fn ok(text: &str) -> Expanded {
        expand(text, &env()).unwrap()
    }

    #[test]
    fn expands_set_unset_and_defaulted_variables() {
        assert_eq!(ok("x-${A}-y").value, "x-alpha-y");
        assert_eq!(ok("${B:-fallback}").value, "fallback");
        assert_eq!(ok("${A:-fallback}").value, "alpha");
        let e = ok("${B}/${C}");
        assert_eq!(e.value, "/");
        assert_eq!(e.unset, ["B", "C"]);
    }

    #[test]
    fn empty_counts_as_unset_like_the_shell_colon_dash() {
        assert_eq!(ok("${EMPTY:-d}").value, "d");
        assert_eq!(ok("${EMPTY}").unset, ["EMPTY"]);
    }

    #[test]
    fn dollar_without_brace_and_escapes_are_literal() {
        assert_eq!(ok("pa$$word $A").value, "pa$$word $A");
        assert_eq!(ok("$${A}").value, "${A}");
        assert_eq!(ok("${A:-a:-b}").value, "alpha");
        assert_eq!(ok("${B:-}").value, "");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(expand("${A", &env()), Err(ExpandError::Unterminated));
        assert_eq!(expand("${1X}", &env()), Err(ExpandError::BadName("1X".into())));
    }
}
