//! YAML text → a tree of nodes that remember where they are in the source.
//!
//! serde's YAML deserializers stop at the first problem; we want every problem in one pass,
//! each pointing at its node, so the decoder walks this tree instead.

use std::collections::HashMap;
use std::ops::Range;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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

/// A problem found while building the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub span: Range<usize>,
    pub message: String,
}

/// Parses the first document. An empty source is an empty mapping.
pub fn parse(source: &str) -> Result<Node, Vec<YamlError>> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    if let Err(e) = parser.load(&mut builder, true) {
        let at = e.marker().index().min(source.len());
        return Err(vec![YamlError { span: at..at, message: format!("YAML syntax error: {}", e.info()) }]);
    }
    let mut errors = builder.errors;
    let root = match builder.documents.len() {
        0 => Node { kind: Kind::Map(Vec::new()), span: 0..0 },
        n => {
            if n > 1 {
                let span = builder.documents[1].span.clone();
                errors.push(YamlError { span, message: "a config file holds one YAML document; found more".into() });
            }
            builder.documents.swap_remove(0)
        }
    };
    let root = match root.kind {
        Kind::Null => Node { kind: Kind::Map(Vec::new()), span: root.span },
        _ => root,
    };
    if errors.is_empty() { Ok(root) } else { Err(errors) }
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
        /// Entries from merge keys (`<<`); explicit entries override them.
        merged: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    documents: Vec<Node>,
    anchors: HashMap<usize, Node>,
    errors: Vec<YamlError>,
}

impl Builder {
    fn push_node(&mut self, node: Node, anchor: usize, line: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, merged, pending_key, .. }) => match pending_key.take() {
                None => match node.kind {
                    Kind::Scalar { text, .. } => *pending_key = Some(Key { text, span: node.span, line }),
                    Kind::Null => *pending_key = Some(Key { text: String::new(), span: node.span, line }),
                    _ => {
                        self.errors.push(YamlError {
                            span: node.span.start..node.span.start + 1,
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
                    } else if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == key.text) {
                        let message = format!("duplicate key `{}` (first given on line {})", key.text, first.line);
                        self.errors.push(YamlError { span: key.span.clone(), message });
                    } else {
                        entries.push((key, node));
                    }
                }
            },
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
    for source in sources {
        for (k, v) in source {
            if !entries.iter().any(|(e, _)| e.text == k.text) {
                entries.push((k, v));
            }
        }
    }
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = mark.index();
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let len = if quoted { text.len() + 2 } else { text.len() };
                let span = at..at + len.max(1);
                let kind = if !quoted && is_null(&text) { Kind::Null } else { Kind::Scalar { text, quoted } };
                self.push_node(Node { kind, span }, anchor, mark.line());
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { start: at, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                start: at,
                anchor,
                entries: Vec::new(),
                merged: Vec::new(),
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { start, anchor, items }) => {
                        (Node { kind: Kind::Seq(items), span: start..start + 1 }, anchor)
                    }
                    Some(Frame::Map { start, anchor, mut entries, merged, .. }) => (
                        Node {
                            span: entries.first().map_or(start..start + 1, |(k, _)| k.span.clone()),
                            kind: Kind::Map({
                                merge_into(
                                    &mut entries,
                                    Node { kind: Kind::Map(merged), span: 0..0 },
                                    &mut self.errors,
                                );
                                entries
                            }),
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.push_node(node, anchor, mark.line());
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.span = at..at + 1;
                    self.push_node(node, 0, mark.line());
                }
                None => self
                    .errors
                    .push(YamlError { span: at..at + 1, message: "alias refers to an unknown anchor".into() }),
            },
            _ => {}
        }
    }
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
