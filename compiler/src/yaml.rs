//! YAML text → a tree of nodes that remember where they are in the source.
//!
//! serde's YAML deserializers stop at the first problem; we want every problem in one pass,
//! each pointing at its node, so the decoder walks this tree instead.
//!
//! The text is untrusted (a hot reload reads whatever lands in the file), so building the tree
//! is bounded: see [`MAX_SOURCE_BYTES`], [`MAX_DEPTH`] and [`MAX_ALIAS_NODES`]. Each bound is far
//! above any real config (the largest documented one, 500 routes, 5,000 keywords and 2,000 keys,
//! is about 300 KB, 7 levels deep, and uses no aliases) and trips with an error at the place it
//! is exceeded, never with a panic or an allocation failure.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use zeroize::Zeroize;

/// The largest config or keys file accepted: 32 MiB (a keys file of 100,000 keys is ~12 MB).
pub const MAX_SOURCE_BYTES: usize = 32 << 20;
/// The deepest nesting of mappings and sequences: 128 (a config's deepest path,
/// `routing.heuristics.rules[].match.keywords[]`, is 6 levels).
pub const MAX_DEPTH: usize = 128;
/// The most nodes that aliases may produce in total (each `*alias` copies its anchor's whole
/// subtree): 1,000,000. A "billion laughs" document trips it within a few kilobytes of text.
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// The byte-order mark some editors put first; YAML ignores it, and so do we.
const BOM: &str = "\u{feff}";

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Scalar { text: String, quoted: bool },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// A mapping key: always a scalar in a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub span: Range<usize>,
    /// 1-based line, for "first given on line N".
    pub line: usize,
}

impl Kind {
    /// How the kind is named in "expected …, found …" messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "nothing (null)",
            Kind::Scalar { quoted: true, .. } => "a quoted string",
            Kind::Scalar { .. } => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// Overwrites every string of the tree (keys included): a config holds credentials, and
    /// the tree is dropped as soon as it is decoded.
    pub fn wipe(&mut self) {
        match &mut self.kind {
            Kind::Null => {}
            Kind::Scalar { text, .. } => text.zeroize(),
            Kind::Seq(items) => items.iter_mut().for_each(Node::wipe),
            Kind::Map(entries) => {
                for (k, v) in entries {
                    k.text.zeroize();
                    v.wipe();
                }
            }
        }
    }

    /// How many nodes the tree holds, and how many collections deep it goes.
    fn measure(&self) -> (usize, usize) {
        match &self.kind {
            Kind::Null | Kind::Scalar { .. } => (1, 0),
            Kind::Seq(items) => items.iter().fold((1, 1), |(n, h), i| {
                let (m, d) = i.measure();
                (n + m, h.max(d + 1))
            }),
            Kind::Map(entries) => entries.iter().fold((1, 1), |(n, h), (_, v)| {
                let (m, d) = v.measure();
                (n + m + 1, h.max(d + 1))
            }),
        }
    }
}

/// A problem found while building the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub span: Range<usize>,
    pub message: String,
}

/// Parses the first document. An empty source (nothing, comments, `null`, `---`) is an empty
/// mapping; a leading byte-order mark is skipped.
pub fn parse(source: &str) -> Result<Node, Vec<YamlError>> {
    let fail = |span: Range<usize>, message: String| Err(vec![YamlError { span, message }]);
    if source.len() > MAX_SOURCE_BYTES {
        return fail(
            0..0,
            format!(
                "the file is {} bytes; a config file may be at most {MAX_SOURCE_BYTES} bytes ({} MiB)",
                source.len(),
                MAX_SOURCE_BYTES >> 20
            ),
        );
    }
    if let Some(at) = memchr::memchr(0, source.as_bytes()) {
        return fail(at..at + 1, "the file contains a NUL byte: a config file is UTF-8 text".into());
    }
    let (text, base) = match source.strip_prefix(BOM) {
        Some(rest) => (rest, BOM.len()),
        None => (source, 0),
    };
    let mut builder = Builder::new(Lines::new(text, base));
    let mut parser = Parser::new_from_str(text);
    while !builder.stop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((event, mark)) => builder.on_event(event, mark),
            Err(e) => {
                let at = builder.lines.offset(*e.marker());
                builder.fail(at..at, format!("YAML syntax error: {}", e.info()));
            }
        }
    }
    for anchored in builder.anchors.values_mut() {
        anchored.node.wipe();
    }
    let root = builder.root.take();
    if !builder.errors.is_empty() {
        if let Some(mut root) = root {
            root.wipe();
        }
        return Err(builder.errors);
    }
    Ok(match root {
        None => Node { kind: Kind::Map(Vec::new()), span: base..base },
        Some(Node { kind: Kind::Null, span }) => Node { kind: Kind::Map(Vec::new()), span },
        Some(root) => root,
    })
}

/// Byte offsets of the scanner's markers. The scanner counts `index` in characters (bytes
/// only inside block scalars), so offsets come from its line and column (in characters).
struct Lines<'s> {
    text: &'s str,
    /// Bytes before `text` in the source (a byte-order mark).
    base: usize,
    starts: Vec<usize>,
    ascii: Vec<bool>,
    /// The last (line, column, byte) looked up on a non-ASCII line: markers come in order,
    /// so walking on from it keeps a long line linear.
    cache: (usize, usize, usize),
}

impl<'s> Lines<'s> {
    fn new(text: &'s str, base: usize) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut ascii = Vec::new();
        let mut line_ascii = true;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
                ascii.push(line_ascii);
                line_ascii = true;
                starts.push(i + 1);
            } else if !b.is_ascii() {
                line_ascii = false;
            }
        }
        ascii.push(line_ascii);
        Self { text, base, starts, ascii, cache: (usize::MAX, 0, 0) }
    }

    fn len(&self) -> usize {
        self.base + self.text.len()
    }

    fn offset(&mut self, mark: Marker) -> usize {
        let line = mark.line().saturating_sub(1);
        let Some(&start) = self.starts.get(line) else {
            return self.len();
        };
        let end = self.starts.get(line + 1).copied().unwrap_or(self.text.len());
        let col = mark.col();
        let rel = if self.ascii[line] {
            (start + col).min(end)
        } else {
            let (mut c, mut byte) =
                if self.cache.0 == line && self.cache.1 <= col { (self.cache.1, self.cache.2) } else { (0, start) };
            for ch in self.text[byte..end].chars() {
                if c == col {
                    break;
                }
                byte += ch.len_utf8();
                c += 1;
            }
            self.cache = (line, c, byte);
            byte
        };
        self.base + rel
    }

    /// A span from `at` of `len` bytes, kept inside the source and on character boundaries.
    fn span(&self, at: usize, len: usize) -> Range<usize> {
        let end = (at + len.max(1)).min(self.len());
        let end = self.base + self.text.floor_char_boundary(end.saturating_sub(self.base));
        at..end.max(at)
    }
}

enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        /// The keys given so far, with their line (duplicates are errors).
        seen: HashMap<String, usize>,
        /// Entries from merge keys (`<<`); explicit entries override them.
        merged: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

/// An anchored node, measured once for the bounds its aliases are checked against.
struct Anchored {
    node: Node,
    size: usize,
    height: usize,
}

struct Builder<'s> {
    lines: Lines<'s>,
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    anchors: HashMap<usize, Anchored>,
    /// Nodes produced by aliases so far.
    expanded: usize,
    errors: Vec<YamlError>,
    /// A bound was exceeded or the syntax is broken: the tree is abandoned.
    stop: bool,
}

impl<'s> Builder<'s> {
    fn new(lines: Lines<'s>) -> Self {
        Self {
            lines,
            stack: Vec::new(),
            root: None,
            documents: 0,
            anchors: HashMap::new(),
            expanded: 0,
            errors: Vec::new(),
            stop: false,
        }
    }

    fn fail(&mut self, span: Range<usize>, message: String) {
        self.errors.push(YamlError { span, message });
        self.stop = true;
    }

    fn too_deep(&mut self, at: usize) {
        self.fail(at..at + 1, format!("nesting deeper than {MAX_DEPTH} levels"));
    }

    fn push_node(&mut self, node: Node, anchor: usize, line: usize) {
        if anchor > 0 {
            let (size, height) = node.measure();
            self.anchors.insert(anchor, Anchored { node: node.clone(), size, height });
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, seen, merged, pending_key, .. }) => match pending_key.take() {
                None => match node.kind {
                    Kind::Scalar { text, .. } => *pending_key = Some(Key { text, span: node.span, line }),
                    Kind::Null => *pending_key = Some(Key { text: String::new(), span: node.span, line }),
                    _ => {
                        let at = node.span.start;
                        self.errors.push(YamlError {
                            span: self.lines.span(at, 1),
                            message: "mapping keys must be plain strings".into(),
                        });
                        *pending_key = Some(Key { text: String::new(), span: node.span, line });
                    }
                },
                Some(key) => {
                    // A block collection's own marker sits after its first key; the key that
                    // holds it is where a reader looks.
                    let mut node = node;
                    if matches!(node.kind, Kind::Map(_) | Kind::Seq(_)) {
                        node.span = key.span.clone();
                    }
                    if key.text == "<<" {
                        merge_into(merged, node, &mut self.errors);
                    } else if let Some(first) = seen.get(&key.text) {
                        let message = format!("duplicate key `{}` (first given on line {first})", key.text);
                        self.errors.push(YamlError { span: key.span.clone(), message });
                    } else {
                        seen.insert(key.text.clone(), key.line);
                        entries.push((key, node));
                    }
                }
            },
        }
    }

    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = self.lines.offset(mark);
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(at..at + 1, "a config file holds one YAML document; found more".into());
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let span = self.lines.span(at, if quoted { text.len() + 2 } else { text.len() });
                let kind = if !quoted && is_null(&text) { Kind::Null } else { Kind::Scalar { text, quoted } };
                self.push_node(Node { kind, span }, anchor, mark.line());
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if self.stack.len() >= MAX_DEPTH => {
                let _ = anchor;
                self.too_deep(at);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { start: at, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                start: at,
                anchor,
                entries: Vec::new(),
                seen: HashMap::new(),
                merged: Vec::new(),
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { start, anchor, items }) => {
                        (Node { kind: Kind::Seq(items), span: self.lines.span(start, 1) }, anchor)
                    }
                    Some(Frame::Map { start, anchor, mut entries, merged, .. }) => {
                        let span = entries.first().map_or_else(|| self.lines.span(start, 1), |(k, _)| k.span.clone());
                        merge_into(&mut entries, Node { kind: Kind::Map(merged), span: 0..0 }, &mut self.errors);
                        (Node { span, kind: Kind::Map(entries) }, anchor)
                    }
                    None => return,
                };
                self.push_node(node, anchor, mark.line());
            }
            Event::Alias(id) => {
                let span = self.lines.span(at, 1);
                let Some(anchored) = self.anchors.get(&id) else {
                    self.errors.push(YamlError { span, message: "alias refers to an unknown anchor".into() });
                    return;
                };
                if self.stack.len() + anchored.height > MAX_DEPTH {
                    return self.too_deep(at);
                }
                self.expanded = self.expanded.saturating_add(anchored.size);
                if self.expanded > MAX_ALIAS_NODES {
                    let message = format!("alias expansion exceeds {MAX_ALIAS_NODES} nodes");
                    return self.fail(span, message);
                }
                let mut node = anchored.node.clone();
                node.span = span;
                self.push_node(node, 0, mark.line());
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// YAML merge keys (`<<: *defaults`): entries already present win.
fn merge_into(entries: &mut Vec<(Key, Node)>, node: Node, errors: &mut Vec<YamlError>) {
    let sources = match node.kind {
        Kind::Map(m) => vec![m],
        Kind::Seq(items) => items
            .into_iter()
            .filter_map(|n| match n.kind {
                Kind::Map(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => {
            errors.push(YamlError {
                span: node.span,
                message: "a merge key `<<` needs a mapping or a list of mappings".into(),
            });
            return;
        }
    };
    if sources.iter().all(Vec::is_empty) {
        return;
    }
    let mut present: HashSet<String> = entries.iter().map(|(k, _)| k.text.clone()).collect();
    for source in sources {
        for (k, v) in source {
            if present.insert(k.text.clone()) {
                entries.push((k, v));
            }
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}
#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &Vec<(Key, Node)> {
        match &node.kind {
            Kind::Map(m) => m,
            other => panic!("expected map, got {other:?}"),
        }
    }

    #[test]
    fn spans_point_at_the_value() {
        let src = "a: 1\nb:\n  c: \"x\"\n";
        let root = parse(src).unwrap();
        let b = &map(&root)[1].1;
        let (key, c) = &map(b)[0];
        assert_eq!(&src[key.span.clone()], "c");
        assert_eq!(&src[c.span.clone()], "\"x\"");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let errors = parse("a: 1\na: 2\n").unwrap_err();
        assert!(errors[0].message.contains("duplicate key `a` (first given on line 1)"));
        assert_eq!(errors[0].span.start, 5);
    }

    #[test]
    fn aliases_and_merge_keys_resolve() {
        let src = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n";
        let root = parse(src).unwrap();
        let other = map(&map(&root)[1].1);
        let keys: Vec<_> = other.iter().map(|(k, _)| k.text.as_str()).collect();
        assert_eq!(keys, ["y", "x"]);
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let errors = parse("a: [1, 2\n").unwrap_err();
        assert!(errors[0].message.starts_with("YAML syntax error"));
    }

    #[test]
    fn empty_source_is_an_empty_map() {
        assert_eq!(parse("").unwrap().kind, Kind::Map(vec![]));
        assert_eq!(parse("# just a comment\n").unwrap().kind, Kind::Map(vec![]));
    }
}
