//! Decoding the node tree into the raw config types, collecting every problem on the way.
//!
//! Each raw type implements [`FromNode`]; the [`section!`] macro writes the impl for a struct
//! (unknown keys with "did you mean", each field decoded in its own path), so adding a config
//! section is one struct declaration.

use std::ops::Range;

use crate::diag::{Diagnostic, Severity};
use crate::env::{Env, expand};
use crate::secret::Secret;
use crate::yaml::{Key, Kind, Node};

/// A value with the byte range of the node it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// The decoding context: environment, current path, diagnostics so far.
pub struct Cx<'e> {
    env: &'e dyn Env,
    path: Vec<Segment>,
    pub diags: Vec<Diagnostic>,
}

enum Segment {
    Key(String),
    Index(usize),
}

impl<'e> Cx<'e> {
    pub fn new(env: &'e dyn Env) -> Self {
        Self { env, path: Vec::new(), diags: Vec::new() }
    }

    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    fn report(&mut self, severity: Severity, span: Range<usize>, message: String, help: Option<String>) {
        let path = self.path();
        self.diags.push(Diagnostic { severity, path, span, message, help });
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.report(Severity::Error, span, message.into(), None);
    }

    pub fn error_help(&mut self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) {
        self.report(Severity::Error, span, message.into(), Some(help.into()));
    }

    pub fn warn(&mut self, span: Range<usize>, message: impl Into<String>, help: Option<String>) {
        self.report(Severity::Warning, span, message.into(), help);
    }

    /// Runs `f` with `segment` appended to the path.
    fn within<R>(&mut self, segment: Segment, f: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(segment);
        let out = f(self);
        self.path.pop();
        out
    }

    /// Runs `f` at an absolute dotted path (used by the compile steps after decoding).
    pub fn at<R>(&mut self, path: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let saved = std::mem::take(&mut self.path);
        self.path = vec![Segment::Key(path.to_owned())];
        let out = f(self);
        self.path = saved;
        out
    }

    pub fn expect_map<'n>(&mut self, node: &'n Node) -> Option<&'n [(Key, Node)]> {
        match &node.kind {
            Kind::Map(entries) => Some(entries),
            other => {
                let found = other.describe();
                self.error(node.span.clone(), format!("expected a mapping, found {found}"));
                None
            }
        }
    }

    /// Decodes one field of a mapping; a null value counts as absent unless the type says
    /// otherwise ([`FromNode::from_null`]), and then it stands at its key.
    pub fn field<T: FromNode>(&mut self, key: &Key, value: &Node) -> Option<T> {
        self.within(Segment::Key(key.text.clone()), |cx| match value.kind {
            Kind::Null => T::from_null(&Node { kind: Kind::Null, span: key.span.clone() }, cx),
            _ => T::from_node(value, cx),
        })
    }

    /// `text` as a glob, or an error at `path` saying why not.
    pub fn glob(&mut self, path: &str, text: &str, span: Range<usize>) -> Option<crate::glob::Glob> {
        match crate::glob::Glob::parse(text) {
            Ok(g) => Some(g),
            Err(why) => {
                self.at(path, |cx| {
                    cx.error_help(span, format!("invalid glob `{text}`: {why}"), "globs use `*`, `?` and `[...]`")
                });
                None
            }
        }
    }

    pub fn unknown_key(&mut self, key: &Key, known: &[&str]) {
        let k = key.text.clone();
        let message = format!("unknown key `{k}`");
        match suggest(&k, known.iter().copied()) {
            Some(s) => self
                .within(Segment::Key(k), |cx| cx.error_help(key.span.clone(), message, format!("did you mean `{s}`?"))),
            None => {
                let list = known.join("`, `");
                self.within(Segment::Key(k), |cx| {
                    cx.error_help(key.span.clone(), message, format!("expected one of `{list}`"))
                })
            }
        }
    }

    /// The text of a scalar node with `${VAR}` expanded. Unset variables are reported as
    /// errors unless `lenient`, in which case they are returned for the caller to handle.
    fn scalar(&mut self, node: &Node, what: &str, lenient: bool) -> Option<ScalarText> {
        let (text, quoted) = match &node.kind {
            Kind::Scalar { text, quoted } => (text, *quoted),
            other => {
                let found = other.describe();
                self.error(node.span.clone(), format!("expected {what}, found {found}"));
                return None;
            }
        };
        let expanded = match expand(text, self.env) {
            Ok(e) => e,
            Err(e) => {
                self.error(node.span.clone(), format!("bad variable reference: {e}"));
                return None;
            }
        };
        if !lenient {
            for var in &expanded.unset {
                self.error_help(
                    node.span.clone(),
                    format!("environment variable `{var}` is not set"),
                    format!("set it, or give a default: `${{{var}:-value}}`"),
                );
            }
            if !expanded.unset.is_empty() {
                return None;
            }
        }
        Some(ScalarText { expanded: text.contains("${"), text: expanded.value, quoted, unset: expanded.unset })
    }
}

struct ScalarText {
    text: String,
    quoted: bool,
    /// The text came (partly) from environment variables, so its type is read from the value.
    expanded: bool,
    unset: Vec<String>,
}

impl ScalarText {
    /// A quoted scalar is always a string in YAML, unless it came from a variable.
    fn typed(&self) -> bool {
        !self.quoted || self.expanded
    }
}

/// Picks the closest candidate to a misspelt word, if one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A raw config type that can be read from a node.
pub trait FromNode: Sized {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self>;

    /// A field written with no value (`local:`): absent, unless the type has a meaning for it.
    fn from_null(_node: &Node, _cx: &mut Cx) -> Option<Self> {
        None
    }
}

impl<T: FromNode> FromNode for Spanned<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        T::from_node(node, cx).map(|value| Spanned { value, span: node.span.clone() })
    }

    fn from_null(node: &Node, cx: &mut Cx) -> Option<Self> {
        T::from_null(node, cx).map(|value| Spanned { value, span: node.span.clone() })
    }
}

impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let Kind::Seq(items) = &node.kind else {
            let found = node.kind.describe();
            cx.error(node.span.clone(), format!("expected a list, found {found}"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = cx.within(Segment::Index(i), |cx| T::from_node(item, cx)) {
                out.push(v);
            }
        }
        Some(out)
    }
}

/// A mapping of names to values kept in file order (`routing.aliases`, `fallbacks`), each
/// name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(Spanned<String>, Spanned<T>)>);

/// Names to strings (`routing.aliases`).
pub type StringMap = OrderedMap<String>;

impl<T> Default for OrderedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: FromNode> FromNode for OrderedMap<T> {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let entries = cx.expect_map(node)?;
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            if let Some(v) = cx.field::<Spanned<T>>(key, value) {
                out.push((Spanned { value: key.text.clone(), span: key.span.clone() }, v));
            }
        }
        Some(OrderedMap(out))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for OrderedMap<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Map_of_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "object", "additionalProperties": generator.subschema_for::<T>()})
    }
}

impl FromNode for String {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        cx.scalar(node, "a string", false).map(|s| s.text)
    }
}

impl FromNode for bool {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let s = cx.scalar(node, "a boolean", false)?;
        match (s.typed(), s.text.as_str()) {
            (true, "true" | "True" | "TRUE") => Some(true),
            (true, "false" | "False" | "FALSE") => Some(false),
            (false, "true" | "false") => {
                cx.error_help(node.span.clone(), "expected a boolean, found a quoted string", "remove the quotes");
                None
            }
            _ => {
                cx.error(node.span.clone(), format!("expected a boolean (true or false), found `{}`", s.text));
                None
            }
        }
    }
}

impl FromNode for i64 {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let s = cx.scalar(node, "an integer", false)?;
        match s.text.parse::<i64>() {
            Ok(v) if s.typed() => Some(v),
            Ok(_) => {
                cx.error_help(node.span.clone(), "expected an integer, found a quoted string", "remove the quotes");
                None
            }
            Err(_) => {
                let help = if s.text.parse::<f64>().is_ok() {
                    "this must be a whole number"
                } else {
                    "write a whole number such as 30"
                };
                cx.error_help(node.span.clone(), format!("expected an integer, found `{}`", s.text), help);
                None
            }
        }
    }
}

impl FromNode for f64 {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let s = cx.scalar(node, "a number", false)?;
        match s.text.parse::<f64>() {
            Ok(v) if s.typed() && v.is_finite() => Some(v),
            Ok(_) if !s.typed() => {
                cx.error_help(node.span.clone(), "expected a number, found a quoted string", "remove the quotes");
                None
            }
            _ => {
                cx.error(node.span.clone(), format!("expected a number, found `{}`", s.text));
                None
            }
        }
    }
}

/// A secret string (gateway key, zrok token): expanded like any string, redacted when printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretString(pub Secret);

impl FromNode for SecretString {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        String::from_node(node, cx).map(|s| SecretString(Secret::new(s)))
    }
}

/// In the JSON Schema these are plain strings.
macro_rules! string_schema {
    ($($t:ty),*) => {$(
        impl schemars::JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                "String".into()
            }
            fn inline_schema() -> bool {
                true
            }
            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    )*};
}

string_schema!(SecretString, ProviderKey);

/// An upstream provider's API key. An unset variable here is only a warning: the gateway
/// starts, and requests to that provider fail with an error naming the variable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderKey {
    pub value: Secret,
    /// The variables that were unset (empty when the key is complete).
    pub unset: Vec<String>,
}

impl FromNode for ProviderKey {
    fn from_node(node: &Node, cx: &mut Cx) -> Option<Self> {
        let s = cx.scalar(node, "a string", true)?;
        for var in &s.unset {
            cx.warn(
                node.span.clone(),
                format!("environment variable `{var}` is not set"),
                Some("requests to this provider will fail with an error naming the variable until it is set and the config reloaded".into()),
            );
        }
        Some(ProviderKey { value: Secret::new(s.text), unset: s.unset })
    }
}

/// Declares a config section: a struct of optional fields plus its [`FromNode`] impl.
/// `field = "yaml-name": Type` gives a YAML key that is not a Rust identifier; a name followed by
/// `(null_is_default)` makes a key written without a value (`local:`) the section with its defaults.
macro_rules! section {
    (
        $(#[$meta:meta])*
        $name:ident $(($null:ident))? {
            $( $(#[$fmeta:meta])* $field:ident $(= $key:literal)? : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, schemars::JsonSchema)]
        #[schemars(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* $(#[schemars(rename = $key)])? pub $field: Option<$ty>, )*
        }

        impl $crate::decode::FromNode for $name {
            fn from_node(node: &$crate::yaml::Node, cx: &mut $crate::decode::Cx) -> Option<Self> {
                let entries = cx.expect_map(node)?;
                let mut out = Self::default();
                for (key, value) in entries {
                    match key.text.as_str() {
                        $( $crate::decode::key_name!($field $(, $key)?) => out.$field = cx.field(key, value), )*
                        _ => cx.unknown_key(key, &[$( $crate::decode::key_name!($field $(, $key)?) ),*]),
                    }
                }
                Some(out)
            }

            $(
                fn from_null(_: &$crate::yaml::Node, _: &mut $crate::decode::Cx) -> Option<Self> {
                    let _ = stringify!($null);
                    Some(Self::default())
                }
            )?
        }
    };
}

macro_rules! key_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $key:literal) => {
        $key
    };
}

/// Declares a closed set of string values (`mode: public | private`).
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
        pub enum $name { $( $(#[$vmeta])* #[schemars(rename = $text)] $variant, )* }

        impl $name {
            pub const ALL: &'static [(&'static str, $name)] = &[$( ($text, $name::$variant) ),*];

            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }
        }

        impl $crate::decode::FromNode for $name {
            fn from_node(node: &$crate::yaml::Node, cx: &mut $crate::decode::Cx) -> Option<Self> {
                let text = String::from_node(node, cx)?;
                if let Some((_, v)) = Self::ALL.iter().find(|(t, _)| *t == text) {
                    return Some(*v);
                }
                let names: Vec<&str> = Self::ALL.iter().map(|(t, _)| *t).collect();
                let help = match $crate::decode::suggest(&text, names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of `{}`", names.join("`, `")),
                };
                cx.error_help(node.span.clone(), format!("unknown value `{text}`"), help);
                None
            }
        }
    };
}

pub(crate) use {key_name, section, string_enum};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    section! {
        Inner { count: i64, on: bool }
    }
    section! {
        Outer { name: String, inner: Spanned<Inner>, ratio: f64, tags: Vec<String>, kind = "match": String }
    }

    fn decode(src: &str) -> (Option<Outer>, Vec<Diagnostic>) {
        let env: HashMap<String, String> = [("N".to_owned(), "7".to_owned())].into();
        let node = crate::yaml::parse(src).unwrap();
        let mut cx = Cx::new(&env);
        let out = Outer::from_node(&node, &mut cx);
        (out, cx.diags)
    }

    #[test]
    fn decodes_every_field() {
        let (out, diags) = decode("name: x\ninner:\n  count: ${N}\n  on: true\nratio: 0.5\ntags: [a, b]\nmatch: m\n");
        assert!(diags.is_empty(), "{diags:?}");
        let out = out.unwrap();
        assert_eq!(out.inner.unwrap().value.count, Some(7));
        assert_eq!(out.kind.as_deref(), Some("m"));
        assert_eq!(out.tags.unwrap(), ["a", "b"]);
    }

    #[test]
    fn reports_all_problems_with_paths() {
        let (_, diags) = decode("nmae: x\ninner: {count: 2.5, on: \"true\"}\nratio: [1]\n");
        let got: Vec<_> = diags.iter().map(|d| (d.path.as_str(), d.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("nmae", "unknown key `nmae`"),
                ("inner.count", "expected an integer, found `2.5`"),
                ("inner.on", "expected a boolean, found a quoted string"),
                ("ratio", "expected a number, found a list"),
            ]
        );
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `name`?"));
    }

    #[test]
    fn suggestions_only_for_likely_typos() {
        assert_eq!(suggest("openai", ["open_ai", "anthropic", "local"]), Some("open_ai"));
        assert_eq!(suggest("api-keys", ["api_keys", "routing"]), Some("api_keys"));
        assert_eq!(suggest("zzzz", ["open_ai", "local"]), None);
    }
}
