//! Differential against quick-xml: a stream both accept gives the same elements, attributes
//! and character data.
//!
//! What legitimately differs is normalized away first:
//! * quick-xml normalizes attribute values (literal tab, LF, CR and CR LF become a space) and
//!   line ends in text (CR LF and CR become LF); xmlwire hands out the text as it was sent, so
//!   its literal parts are normalized here the same way (references are not: `&#13;` stays CR).
//! * quick-xml reports references in text as separate events, and splits text at comments and
//!   CDATA: character data between two element events is compared as one string.
//! * whitespace between top-level elements is skipped by xmlwire and reported by quick-xml.
//! * xmlwire refuses much that quick-xml lets through (characters XML forbids, `]]>` in text,
//!   `--` in comments, DOCTYPE, non-ASCII names...): only streams xmlwire accepts are compared.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quick_xml::events::{BytesStart, Event};
use quick_xml::XmlVersion;
use xmlwire::{Limits, Reader, Token, XmlStr};

#[derive(Debug, PartialEq)]
enum Node {
    Start(String, Vec<(String, String)>),
    End(String),
    Text(String),
}

/// Collects character data until the next element event.
#[derive(Default)]
struct Nodes {
    nodes: Vec<Node>,
    text: String,
}

impl Nodes {
    fn element(&mut self, node: Node) {
        if !self.text.is_empty() {
            self.nodes.push(Node::Text(std::mem::take(&mut self.text)));
        }
        self.nodes.push(node);
    }
}

/// Literal text with XML 1.0 line-end normalization; in attribute values, also whitespace
/// normalization.
fn push_literal(out: &mut String, literal: &str, attribute: bool) {
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        let c = if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            '\n'
        } else {
            c
        };
        out.push(if attribute && matches!(c, '\t' | '\n') {
            ' '
        } else {
            c
        });
    }
}

/// xmlwire raw text resolved as quick-xml resolves it: references replaced, literal parts
/// normalized.
fn resolve(raw: &str, attribute: bool) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        push_literal(&mut out, &rest[..amp], attribute);
        let semicolon = rest[amp..]
            .find(';')
            .expect("the reader checked the reference")
            + amp;
        XmlStr::Raw(&rest[amp..=semicolon]).unescape_into(&mut out);
        rest = &rest[semicolon + 1..];
    }
    push_literal(&mut out, rest, attribute);
    out
}

fn xmlwire_nodes(data: &[u8]) -> Option<Vec<Node>> {
    let mut reader = Reader::new(Limits::DEFAULT);
    reader.feed(data).ok()?;
    let mut nodes = Nodes::default();
    while let Some(frame) = reader.next_message().ok()? {
        let mut open: Option<StartTag> = None;
        for token in frame.tokens {
            match *token {
                Token::ElementStart { name } => open = Some((frame.str(name).into(), Vec::new())),
                Token::Attribute { name, value } => {
                    let attributes = &mut open.as_mut().expect("in a start tag").1;
                    attributes.push((frame.str(name).into(), resolve(frame.str(value), true)));
                }
                Token::ElementOpen => {
                    let (name, attributes) = open.take().expect("in a start tag");
                    nodes.element(Node::Start(name, attributes));
                }
                Token::ElementEmpty => {
                    let (name, attributes) = open.take().expect("in a start tag");
                    nodes.element(Node::Start(name.clone(), attributes));
                    nodes.element(Node::End(name));
                }
                Token::ElementClose { name } => nodes.element(Node::End(frame.str(name).into())),
                Token::Text { raw } => nodes.text.push_str(&resolve(frame.str(raw), false)),
                Token::CData { text } => push_literal(&mut nodes.text, frame.str(text), false),
            }
        }
    }
    reader.finish().ok()?;
    Some(nodes.nodes)
}

type StartTag = (String, Vec<(String, String)>);

fn start_tag(e: &BytesStart<'_>) -> Option<StartTag> {
    let mut attributes = Vec::new();
    for attribute in e.attributes() {
        let attribute = attribute.ok()?;
        let value = attribute.normalized_value(XmlVersion::Implicit1_0).ok()?;
        attributes.push((attribute.key.0.to_string(), value.into_owned()));
    }
    Some((e.name().0.to_string(), attributes))
}

fn quick_xml_nodes(data: &[u8]) -> Option<Vec<Node>> {
    let mut reader = quick_xml::Reader::from_reader(data);
    let mut nodes = Nodes::default();
    let mut depth = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                let (name, attributes) = start_tag(&e)?;
                nodes.element(Node::Start(name, attributes));
            }
            Event::Empty(e) => {
                let (name, attributes) = start_tag(&e)?;
                nodes.element(Node::Start(name.clone(), attributes));
                nodes.element(Node::End(name));
            }
            Event::End(e) => {
                depth = depth.checked_sub(1)?;
                nodes.element(Node::End(e.name().0.to_string()));
            }
            Event::Text(e) if depth > 0 => nodes.text.push_str(&e.xml10_content()),
            Event::CData(e) if depth > 0 => nodes.text.push_str(&e.xml10_content()),
            Event::GeneralRef(e) if depth > 0 => match e.resolve_char_ref().ok()? {
                Some(c) => nodes.text.push(c),
                None => nodes.text.push(match &*e.xml10_content() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    _ => return None,
                }),
            },
            Event::Eof => break,
            _ => {}
        }
    }
    (depth == 0).then_some(nodes.nodes)
}

fuzz_target!(|data: &[u8]| {
    let Some(ours) = xmlwire_nodes(data) else {
        return;
    };
    let Some(theirs) = quick_xml_nodes(data) else {
        return;
    };
    assert_eq!(ours, theirs);
});
