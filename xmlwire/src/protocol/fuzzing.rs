//! `Arbitrary` for the protocol's leaf types (feature `arbitrary`), so that [`Message`] derives
//! it. Strings borrow from the fuzzer's input; each is cut to its longest prefix of the right
//! form, so almost every input gives a message whose fields are well-formed, and the fuzzer
//! steers toward ones whose cross-field rules (lo < hi, ...) hold too.
//!
//! [`Message`]: super::Message

use arbitrary::{Arbitrary, Result, Unstructured};

use super::values::{Algorithm, Base64, Hex, PerfectList};
use crate::{scan, XmlStr};

/// The longest prefix of `text` whose characters XML can carry.
fn xml_prefix(text: &str) -> &str {
    let end = text
        .char_indices()
        .find(|&(_, c)| !scan::is_xml_char(c))
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

impl<'a> Arbitrary<'a> for XmlStr<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let text = xml_prefix(<&'a str>::arbitrary(u)?);
        Ok(XmlStr::Plain(text))
    }
}

impl<'a> Arbitrary<'a> for Hex<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let text = <&'a str>::arbitrary(u)?;
        let digits = text
            .bytes()
            .take(Hex::MAX_LEN)
            .take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            .count();
        Ok(Hex::new(&text[..digits & !1]).unwrap_or(Hex::ZERO))
    }
}

impl<'a> Arbitrary<'a> for Base64<'a> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let text = <&'a str>::arbitrary(u)?;
        // The longest prefix, a multiple of 4 long, that is canonical base64.
        let mut len = text.len() / 4 * 4;
        loop {
            if let Some(b64) = text.get(..len).and_then(Base64::new) {
                return Ok(b64);
            }
            if len == 0 {
                return Ok(Base64::EMPTY);
            }
            len -= 4;
        }
    }
}

impl<'a> Arbitrary<'a> for PerfectList {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut list = PerfectList::new();
        for _ in 0..u.int_in_range(0..=PerfectList::CAPACITY)? {
            // Never full: at most CAPACITY pushes.
            let _ = list.push(u64::arbitrary(u)?);
        }
        Ok(list)
    }
}

/// Any algorithm: `Algorithm` is the kernel's, which has no dependencies, so the messages that
/// carry one name this function for their field instead of deriving through it.
pub(super) fn algorithm(u: &mut Unstructured<'_>) -> Result<Algorithm> {
    u.choose(Algorithm::ALL).copied()
}
