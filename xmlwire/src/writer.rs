//! Building messages into a reusable buffer.

use crate::XmlStr;

/// Writes one message into a `Vec<u8>` (appending), escaping attribute values and text. It keeps
/// no element stack: the caller closes what it opened.
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Writer { out }
    }
    /// `<name`
    pub fn open(&mut self, name: &str) -> &mut Self {
        let _ = (name, &self.out);
        todo!()
    }
    /// ` name="value"`, the value escaped.
    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        let _ = (name, value);
        todo!()
    }
    /// ` name="123"`
    pub fn attr_u64(&mut self, name: &str, value: u64) -> &mut Self {
        let _ = (name, value);
        todo!()
    }
    /// ` name="value"`: raw text is copied as it is (already valid), plain text escaped.
    pub fn attr_xml(&mut self, name: &str, value: XmlStr<'_>) -> &mut Self {
        let _ = (name, value);
        todo!()
    }
    /// `>`: the start tag ends and content follows.
    pub fn end_open(&mut self) -> &mut Self {
        todo!()
    }
    /// `/>`: the element is empty.
    pub fn end_empty(&mut self) -> &mut Self {
        todo!()
    }
    /// Escaped character data.
    pub fn text(&mut self, text: &str) -> &mut Self {
        let _ = text;
        todo!()
    }
    /// Character data: raw copied, plain escaped.
    pub fn text_xml(&mut self, text: XmlStr<'_>) -> &mut Self {
        let _ = text;
        todo!()
    }
    /// `</name>`
    pub fn close(&mut self, name: &str) -> &mut Self {
        let _ = name;
        todo!()
    }
}
