//! Diagnostics: every problem the compiler finds, with where it is and what to do about it.

use std::borrow::Cow;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::{Files, SimpleFile};
use codespan_reporting::term;
use serde::Serialize;

use crate::mask::{Masked, mask_urls};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem: `path` names the config node (`providers.local.endpoints[1].weight`),
/// `span` is its byte range in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: String,
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

/// All diagnostics of one compilation, in source order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// A diagnostic located in its file, ready for machine-readable output.
#[derive(Debug, Serialize)]
pub struct Located<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub path: Cow<'a, str>,
    pub message: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<Cow<'a, str>>,
}

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.0.iter().filter(|d| d.severity == severity).count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.span.start, d.severity == Severity::Warning));
    }

    /// Renders like rustc: a header, the offending source line with a caret, and help.
    ///
    /// The quoted source has its secrets masked (values of `key:`, `api_key:`, `token:`,
    /// `zrok_share_token:` and the like, and URL userinfo, as `****`), and so do messages
    /// that quote a URL: what `check` prints and the reload logs may be shared.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let masked = Masked::new(source);
        let file = SimpleFile::new(file_name, masked.text.as_str());
        let config = term::Config::default();
        let mut out = String::new();
        for d in &self.0 {
            let severity = match d.severity {
                Severity::Error => codespan_reporting::diagnostic::Severity::Error,
                Severity::Warning => codespan_reporting::diagnostic::Severity::Warning,
            };
            let span = clamp(&masked.span(&clamp(&d.span, source)), &masked.text);
            let message = mask_urls(&d.message);
            let mut cs = CsDiagnostic::new(severity)
                .with_message(message.as_ref())
                .with_labels(vec![Label::primary((), span).with_message(mask_urls(&d.path))]);
            if let Some(help) = &d.help {
                cs = cs.with_notes(vec![format!("help: {}", mask_urls(help))]);
            }
            match term::emit_into_string(&config, &file, &cs) {
                Ok(text) => out.push_str(&text),
                Err(_) => out.push_str(&format!("{file_name}: {message}\n")),
            }
        }
        out
    }

    /// The diagnostics with 1-based line and column, for `--format json`.
    pub fn locate<'a>(&'a self, file_name: &'a str, source: &str) -> Vec<Located<'a>> {
        let file = SimpleFile::new(file_name, source);
        self.0
            .iter()
            .map(|d| {
                let (line, column) = line_col(&file, clamp(&d.span, source).start);
                Located {
                    file: file_name,
                    line,
                    column,
                    severity: d.severity,
                    path: mask_urls(&d.path),
                    message: mask_urls(&d.message),
                    help: d.help.as_deref().map(mask_urls),
                }
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(file: &SimpleFile<&str, &str>, offset: usize) -> (usize, usize) {
    match file.location((), offset) {
        Ok(loc) => (loc.line_number, loc.column_number),
        Err(_) => (1, 1),
    }
}

/// A span inside `text` whose ends are on character boundaries.
fn clamp(span: &Range<usize>, text: &str) -> Range<usize> {
    let start = text.floor_char_boundary(span.start);
    start..text.ceil_char_boundary(span.end.max(start))
}
