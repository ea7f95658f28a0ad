//! Walking a frame's tokens: start tags with their attributes, children, and text content.
//!
//! Every message is at most two levels deep (the message element and its leaf children), so
//! decoding is a loop over children with no recursion and no allocation.

use super::error::{DecodeError, Problem};
use super::values::{parse_flag, parse_u64, Base64, Hex, Keyword};
use crate::scan;
use crate::{Frame, Span, Token, XmlStr};

/// A start tag: the element's name, its attribute tokens, and whether it was `<name .../>`.
pub(crate) struct Tag<'a> {
    pub name: &'a str,
    pub name_span: Span,
    attrs: &'a [Token],
    pub empty: bool,
}

/// The content of an element holding text.
#[derive(Clone, Copy)]
pub(crate) enum Content {
    /// No characters.
    Empty,
    /// Raw text (references unresolved).
    Text(Span),
    /// One CDATA section, literal.
    CData(Span),
}

pub(crate) struct Cursor<'f, 'a> {
    frame: &'f Frame<'a>,
    pos: usize,
}

fn broken() -> DecodeError {
    DecodeError::known(Problem::BrokenFrame, "")
}

/// Only XML whitespace: space, tab, carriage return, line feed.
fn is_blank(text: &str) -> bool {
    scan::skip(text.as_bytes(), 0, scan::WS) == text.len()
}

impl<'f, 'a> Cursor<'f, 'a> {
    pub fn new(frame: &'f Frame<'a>) -> Self {
        Cursor { frame, pos: 0 }
    }

    pub fn str(&self, span: Span) -> &'a str {
        self.frame.str(span)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.frame.tokens.get(self.pos).copied();
        self.pos += 1;
        token
    }

    /// The message element's start tag.
    pub fn root(&mut self) -> Result<Tag<'a>, DecodeError> {
        match self.next() {
            Some(Token::ElementStart { name }) => self.rest_of_tag(name),
            _ => Err(broken()),
        }
    }

    /// After the message element's end: nothing may follow.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.frame.tokens.len() {
            Ok(())
        } else {
            Err(broken())
        }
    }

    /// Skips whatever is left of the message.
    pub fn skip_rest(&mut self) {
        self.pos = self.frame.tokens.len();
    }

    /// The attributes and the end of a start tag whose name token was just read.
    fn rest_of_tag(&mut self, name_span: Span) -> Result<Tag<'a>, DecodeError> {
        let tokens = self.frame.tokens;
        let first = self.pos;
        while let Some(Token::Attribute { .. }) = tokens.get(self.pos) {
            self.pos += 1;
        }
        let attrs = &tokens[first..self.pos];
        let empty = match self.next() {
            Some(Token::ElementEmpty) => true,
            Some(Token::ElementOpen) => false,
            _ => return Err(broken()),
        };
        Ok(Tag {
            name: self.str(name_span),
            name_span,
            attrs,
            empty,
        })
    }

    /// The next child element of `parent` (whose start tag was the last one read), skipping
    /// whitespace; `None` once `parent` is closed.
    pub fn next_child(
        &mut self,
        parent: &Tag<'a>,
        parent_name: &'static str,
    ) -> Result<Option<Tag<'a>>, DecodeError> {
        if parent.empty {
            return Ok(None);
        }
        loop {
            match self.next() {
                Some(Token::Text { raw: text } | Token::CData { text }) => {
                    if !is_blank(self.str(text)) {
                        return Err(DecodeError::known(Problem::UnexpectedText, parent_name));
                    }
                }
                Some(Token::ElementStart { name }) => return self.rest_of_tag(name).map(Some),
                Some(Token::ElementClose { .. }) => return Ok(None),
                _ => return Err(broken()),
            }
        }
    }

    /// Ends an element that has no content (whitespace aside).
    pub fn no_content(&mut self, tag: &Tag<'a>, name: &'static str) -> Result<(), DecodeError> {
        match self.next_child(tag, name)? {
            None => Ok(()),
            Some(child) => Err(DecodeError::at(Problem::UnknownElement, child.name_span)),
        }
    }

    /// Reads the text content of `tag` up to its end tag: nothing, one run of text, or one
    /// CDATA section. Text runs the reader split but that touch are joined.
    pub fn text_content(
        &mut self,
        tag: &Tag<'a>,
        name: &'static str,
    ) -> Result<Content, DecodeError> {
        if tag.empty {
            return Ok(Content::Empty);
        }
        let mut content = Content::Empty;
        loop {
            content = match (self.next(), content) {
                (Some(Token::ElementClose { .. }), content) => return Ok(content),
                (Some(Token::Text { raw }), Content::Empty) => Content::Text(raw),
                (Some(Token::Text { raw }), Content::Text(run)) if run.end == raw.start => {
                    Content::Text(Span {
                        start: run.start,
                        end: raw.end,
                    })
                }
                (Some(Token::CData { text }), Content::Empty) => Content::CData(text),
                (Some(Token::Text { .. } | Token::CData { .. }), _) => {
                    return Err(DecodeError::known(Problem::SplitText, name));
                }
                (Some(Token::ElementStart { name }), _) => {
                    return Err(DecodeError::at(Problem::UnknownElement, name));
                }
                _ => return Err(broken()),
            }
        }
    }

    /// The text content as a string: raw text, or CDATA (literal, so plain).
    pub fn xml_content(
        &mut self,
        tag: &Tag<'a>,
        name: &'static str,
    ) -> Result<XmlStr<'a>, DecodeError> {
        Ok(match self.text_content(tag, name)? {
            Content::Empty => XmlStr::Plain(""),
            Content::Text(span) => XmlStr::Raw(self.str(span)),
            Content::CData(span) => XmlStr::Plain(self.str(span)),
        })
    }

    /// The text content as base64 (which has no references, so raw text and CDATA read alike).
    pub fn base64_content(
        &mut self,
        tag: &Tag<'a>,
        name: &'static str,
    ) -> Result<Base64<'a>, DecodeError> {
        let text = match self.text_content(tag, name)? {
            Content::Empty => "",
            Content::Text(span) | Content::CData(span) => self.str(span),
        };
        Base64::new(text).ok_or(DecodeError::known(Problem::BadBase64, name))
    }

    /// The attributes of `tag`, checked against `names`. An attribute not in `names` is an
    /// error when `strict`; otherwise the first one is kept for [`Attrs::reject_unknown`].
    pub fn attrs<const N: usize>(
        &self,
        tag: &Tag<'a>,
        names: &'static [&'static str; N],
        strict: bool,
    ) -> Result<Attrs<'a, N>, DecodeError> {
        let mut attrs = Attrs {
            names,
            values: [None; N],
            unknown: None,
        };
        for token in tag.attrs {
            let Token::Attribute { name, value } = *token else {
                return Err(broken());
            };
            let text = self.str(name);
            match names.iter().position(|known| *known == text) {
                Some(i) if attrs.values[i].is_some() => {
                    return Err(DecodeError::at(Problem::DuplicateAttribute, name));
                }
                Some(i) => attrs.values[i] = Some(self.str(value)),
                None => {
                    attrs.unknown = attrs.unknown.or(Some(name));
                }
            }
        }
        if strict {
            attrs.reject_unknown()?;
        }
        Ok(attrs)
    }
}

/// The known attributes of one element, by name, with typed getters whose errors name the
/// attribute.
pub(crate) struct Attrs<'a, const N: usize> {
    names: &'static [&'static str; N],
    values: [Option<&'a str>; N],
    /// The first attribute not in `names`.
    unknown: Option<Span>,
}

impl<'a, const N: usize> Attrs<'a, N> {
    /// An error naming the first attribute not in the element's list, if there was one.
    pub fn reject_unknown(&self) -> Result<(), DecodeError> {
        match self.unknown {
            Some(name) => Err(DecodeError::at(Problem::UnknownAttribute, name)),
            None => Ok(()),
        }
    }

    /// The raw value of `name` (which must be one of this element's names).
    pub fn get(&self, name: &'static str) -> Option<&'a str> {
        let i = self.names.iter().position(|known| *known == name);
        debug_assert!(i.is_some(), "{name} is not in the attribute list");
        self.values.get(i?).copied().flatten()
    }

    fn parse<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&'a str) -> Result<T, Problem>,
    ) -> Result<Option<T>, DecodeError> {
        self.get(name)
            .map(|text| parse(text).map_err(|p| DecodeError::known(p, name)))
            .transpose()
    }

    fn required<T>(&self, name: &'static str, value: Option<T>) -> Result<T, DecodeError> {
        value.ok_or(DecodeError::known(Problem::MissingAttribute, name))
    }

    pub fn opt_u64(&self, name: &'static str) -> Result<Option<u64>, DecodeError> {
        self.parse(name, parse_u64)
    }

    pub fn u64(&self, name: &'static str) -> Result<u64, DecodeError> {
        self.required(name, self.opt_u64(name)?)
    }

    /// A `0`/`1` flag, `false` when absent.
    pub fn flag(&self, name: &'static str) -> Result<bool, DecodeError> {
        Ok(self.parse(name, parse_flag)?.unwrap_or(false))
    }

    pub fn opt_xml(&self, name: &'static str) -> Option<XmlStr<'a>> {
        self.get(name).map(XmlStr::Raw)
    }

    pub fn xml(&self, name: &'static str) -> Result<XmlStr<'a>, DecodeError> {
        self.required(name, self.opt_xml(name))
    }

    pub fn opt_hex(&self, name: &'static str) -> Result<Option<Hex<'a>>, DecodeError> {
        self.parse(name, Hex::parse)
    }

    pub fn hex(&self, name: &'static str) -> Result<Hex<'a>, DecodeError> {
        self.required(name, self.opt_hex(name)?)
    }

    pub fn keyword<K: Keyword>(&self, name: &'static str) -> Result<K, DecodeError> {
        let value = self.parse(name, |text| {
            K::from_keyword(text).ok_or(Problem::BadKeyword)
        })?;
        self.required(name, value)
    }
}
