//! A YAML tree that remembers where every node came from, and a serde
//! deserializer over it whose errors carry the span of the offending node.
//!
//! Spec files are parsed with `saphyr-parser` (YAML 1.2) into [`Node`]s. Typed
//! values are then deserialized from the tree with [`from_node`], so that an
//! unknown field, a wrong type or a bad duration is reported at the exact
//! line and column that holds it, and semantic checks can find the span of
//! any field later with [`Node::lookup`].

mod de;

pub use de::{DeError, DeErrorKind, from_node};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};
use std::collections::HashMap;

/// A half-open byte range in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span covering `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end.max(start) as u32,
        }
    }

    /// The byte range, for slicing the source.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One YAML node with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's content.
    pub value: Value,
    /// Where the node is in its file.
    pub span: Span,
}

/// The content of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar, kept as text: its type is resolved by what reads it.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Node, Node)>),
}

/// A scalar's text and whether it was quoted.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The scalar's text after YAML unescaping.
    pub text: String,
    /// Plain (unquoted) scalars may resolve to null, booleans and numbers.
    pub plain: bool,
}

impl Node {
    /// The text of a scalar node, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// The entries of a mapping node, if it is one.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// Whether the node is a YAML null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(s) if s.plain && is_null(&s.text))
    }

    /// The value stored under `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node stored under `key` in a mapping node.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// Follows a path of mapping keys and sequence indices (`["spec",
    /// "dependsOn", "1"]`) and returns the deepest node found on the way, so
    /// that a diagnostic always has somewhere sensible to point.
    pub fn lookup<S: AsRef<str>>(&self, path: &[S]) -> &Node {
        let mut node = self;
        for segment in path {
            let segment = segment.as_ref();
            let next = match &node.value {
                Value::Map(_) => node.get(segment),
                Value::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                Value::Scalar(_) => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// Like [`Node::lookup`], but for a mapping entry returns the key's span
    /// (where a reviewer expects an "unknown field" caret).
    pub fn lookup_key<S: AsRef<str>>(&self, path: &[S]) -> Span {
        if let Some((last, parent)) = path.split_last() {
            let parent_node = self.lookup(parent);
            if let Some((k, _)) = parent_node.entry(last.as_ref()) {
                return k.span;
            }
        }
        self.lookup(path).span
    }
}

pub(crate) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A YAML syntax error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// What went wrong, in the parser's words.
    pub message: String,
    /// Where it went wrong.
    pub span: Span,
}

impl SyntaxError {
    fn from_scan(e: &ScanError) -> Self {
        let at = e.marker().index();
        SyntaxError {
            message: e.info().to_string(),
            span: Span::new(at, at + 1),
        }
    }
}

/// Parses every document of a (possibly multi-document) YAML stream.
///
/// Empty documents (a lone `---`, or only comments) are skipped. Anchors and
/// aliases are expanded; an alias keeps the span of the anchored node.
pub fn parse_documents(src: &str) -> Result<Vec<Node>, SyntaxError> {
    // A byte-order mark is not content; spans stay relative to the file.
    let (base, src_body) = match src.strip_prefix('\u{feff}') {
        Some(rest) => (src.len() - rest.len(), rest),
        None => (0, src),
    };
    let shift = |span: &mut Span| {
        span.start += base as u32;
        span.end += base as u32;
    };
    let mut docs = parse_body(src_body).map_err(|mut e| {
        shift(&mut e.span);
        e
    })?;
    if base > 0 {
        fn walk(node: &mut Node, shift: &dyn Fn(&mut Span)) {
            shift(&mut node.span);
            match &mut node.value {
                Value::Scalar(_) => {}
                Value::Seq(items) => items.iter_mut().for_each(|n| walk(n, shift)),
                Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                    walk(k, shift);
                    walk(v, shift);
                }),
            }
        }
        docs.iter_mut().for_each(|d| walk(d, &shift));
    }
    Ok(docs)
}

/// Collections nested deeper than this are refused (the tree, serde and
/// every walk over it recurse).
pub const MAX_DEPTH: usize = 128;

/// Most nodes one file may expand to, aliases included ("billion laughs").
pub const MAX_NODES: usize = 2_000_000;

fn parse_body(src: &str) -> Result<Vec<Node>, SyntaxError> {
    // The parser counts positions in characters; spans are in bytes.
    let offsets: Option<Vec<u32>> = (!src.is_ascii()).then(|| {
        let mut v: Vec<u32> = src.char_indices().map(|(i, _)| i as u32).collect();
        v.push(src.len() as u32);
        v
    });
    let byte = |char_index: usize| -> usize {
        match &offsets {
            None => char_index.min(src.len()),
            Some(v) => v.get(char_index).map_or(src.len(), |b| *b as usize),
        }
    };
    let mut builder = TreeBuilder {
        src,
        ..TreeBuilder::default()
    };
    let parser = Parser::new_from_str(src);
    for item in parser {
        let (event, span) = item.map_err(|e| {
            let mut err = SyntaxError::from_scan(&e);
            let mut at = byte(e.marker().index());
            // An error at the end of input is about the last thing written.
            let content_end = src.trim_end().len();
            if at >= content_end && content_end > 0 {
                at = content_end - 1;
            }
            err.span = Span::new(at, (at + 1).min(src.len().max(at)));
            err
        })?;
        builder.on_event(
            event,
            Span::new(byte(span.start.index()), byte(span.end.index())),
        )?;
    }
    Ok(builder.documents)
}

#[derive(Default)]
struct TreeBuilder<'s> {
    src: &'s str,
    documents: Vec<Node>,
    /// Open collections: the node under construction, its anchor, and a
    /// pending mapping key.
    stack: Vec<(Node, usize, Option<Node>)>,
    anchors: HashMap<usize, Node>,
    /// Nodes created so far, aliases counted at their expanded size.
    nodes: usize,
}

fn node_count(node: &Node) -> usize {
    match &node.value {
        Value::Scalar(_) => 1,
        Value::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
    }
}

impl TreeBuilder<'_> {
    fn on_event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                message: format!("document expands to more than {MAX_NODES} nodes"),
                span,
            });
        }
        if matches!(event, Event::SequenceStart(..) | Event::MappingStart(..))
            && self.stack.len() >= MAX_DEPTH
        {
            return Err(SyntaxError {
                message: format!("collections nested deeper than {MAX_DEPTH} levels"),
                span,
            });
        }
        match event {
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => {}
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    }),
                    span,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node);
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).ok_or_else(|| SyntaxError {
                    message: "alias to an unknown anchor".into(),
                    span,
                })?;
                // Count before cloning: an alias of an alias of ... must not
                // exhaust memory.
                self.nodes += node_count(node);
                if self.nodes > MAX_NODES {
                    return Err(SyntaxError {
                        message: format!("aliases expand to more than {MAX_NODES} nodes"),
                        span,
                    });
                }
                let node = node.clone();
                self.push(node);
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    value: Value::Seq(Vec::new()),
                    span,
                },
                anchor,
                None,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    value: Value::Map(Vec::new()),
                    span,
                },
                anchor,
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                let (mut node, anchor, _) = self.stack.pop().expect("balanced events");
                let last_end = match &node.value {
                    Value::Map(entries) => entries.last().map(|(_, v)| v.span.end),
                    Value::Seq(items) => items.last().map(|n| n.span.end),
                    Value::Scalar(_) => None,
                };
                let flow = matches!(
                    self.src.as_bytes().get(node.span.start as usize),
                    Some(b'[' | b'{')
                );
                node.span.end = if flow {
                    span.end
                } else {
                    last_end.unwrap_or(span.end)
                }
                .max(node.span.start + 1);
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node);
            }
        }
        Ok(())
    }

    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if !node.is_null() || matches!(node.value, Value::Map(_) | Value::Seq(_)) {
                    self.documents.push(node);
                }
            }
            Some((parent, _, pending_key)) => match &mut parent.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => match pending_key.take() {
                    None => *pending_key = Some(node),
                    Some(key) => entries.push((key, node)),
                },
                Value::Scalar(_) => unreachable!("scalars have no children"),
            },
        }
    }
}

/// Maps byte offsets to 1-based line and column numbers (columns count
/// characters, as editors do).
#[derive(Debug, Clone)]
pub struct LineIndex {
    line_starts: Vec<u32>,
}

impl LineIndex {
    /// Indexes the line starts of `src`.
    pub fn new(src: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            src.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i as u32 + 1),
        );
        LineIndex { line_starts }
    }

    /// The 1-based line and column of byte `offset` in `src`.
    pub fn line_col(&self, src: &str, offset: u32) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line] as usize;
        let end = (offset as usize).min(src.len());
        let col = src
            .get(start..end)
            .map_or(end - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_nodes() {
        let src = "a: 1\nb:\n  - x\n  - {c: d}\n---\nname: é\nkind: Job\n";
        let docs = parse_documents(src).unwrap();
        assert_eq!(docs.len(), 2);
        let x = docs[0].lookup(&["b", "0"]);
        assert_eq!(&src[x.span.range()], "x");
        let d = docs[0].lookup(&["b", "1", "c"]);
        assert_eq!(&src[d.span.range()], "d");
        let kind = docs[1].get("kind").unwrap();
        assert_eq!(&src[kind.span.range()], "Job");
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_col(src, kind.span.start), (7, 7));
        let e = docs[1].get("name").unwrap();
        assert_eq!(&src[e.span.range()], "é");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let src = "a: 1\nb: [1, 2\nc: 3\n";
        let err = parse_documents(src).unwrap_err();
        assert!(err.span.start as usize <= src.len());
    }

    #[test]
    fn limits_depth_and_alias_expansion() {
        let deep = "- ".repeat(3000) + "x\n";
        assert!(
            parse_documents(&deep)
                .unwrap_err()
                .message
                .contains("nested deeper")
        );
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        assert!(
            parse_documents(&bomb)
                .unwrap_err()
                .message
                .contains("expand")
        );
    }

    #[test]
    fn skips_a_byte_order_mark() {
        let src = "\u{feff}kind: Job\n";
        let docs = parse_documents(src).unwrap();
        let kind = docs[0].get("kind").unwrap();
        assert_eq!(&src[kind.span.range()], "Job");
    }

    #[test]
    fn aliases_expand() {
        let docs = parse_documents("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(docs[0].lookup(&["other", "x"]).as_str(), Some("1"));
    }
}
