//! Byte-level building blocks shared by the reader, the resolver and the writer: a byte-class
//! table, UTF-8 and XML `Char` validation, names, and character/entity references.
//!
//! Everything here works on a byte slice and an index, returns indices, and never panics: every
//! access goes through `get`, or is behind a length check in the same expression.

use crate::ErrorKind;

/// `[A-Za-z_:]`: may start a name. xmlwire restricts names to ASCII (documented in the crate
/// root): sigma's names are ASCII, and it keeps name checks a table lookup.
pub(crate) const NAME_START: u16 = 1 << 0;
/// `[A-Za-z0-9_:.-]`: may continue a name.
pub(crate) const NAME: u16 = 1 << 1;
/// XML whitespace: space, tab, line feed, carriage return.
pub(crate) const WS: u16 = 1 << 2;
/// ASCII character data that needs no attention inside a `"`-quoted attribute value.
pub(crate) const ATTR_DQ: u16 = 1 << 3;
/// ASCII character data that needs no attention inside a `'`-quoted attribute value.
pub(crate) const ATTR_SQ: u16 = 1 << 4;
/// ASCII character data that needs no attention in element content (stops at `<`, `&`, and at
/// `>` so that `]]>` can be rejected).
pub(crate) const TEXT: u16 = 1 << 5;
/// ASCII character data that needs no attention in a comment (stops at `-`).
pub(crate) const COMMENT: u16 = 1 << 6;
/// ASCII character data that needs no attention in a CDATA section (stops at `>`).
pub(crate) const CDATA: u16 = 1 << 7;
/// ASCII character data that needs no attention in a processing instruction (stops at `?`).
pub(crate) const PI: u16 = 1 << 8;

/// Class bits of every byte. Non-ASCII bytes and forbidden control characters have none of the
/// character-data bits, so every scan stops on them and checks them properly.
pub(crate) static CLASS: [u16; 256] = build_class_table();

const fn build_class_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let mut class = 0u16;
        let letter = c.is_ascii_alphabetic() || c == b'_' || c == b':';
        if letter {
            class |= NAME_START | NAME;
        }
        if c.is_ascii_digit() || c == b'.' || c == b'-' {
            class |= NAME;
        }
        let ws = c == b' ' || c == b'\t' || c == b'\n' || c == b'\r';
        if ws {
            class |= WS;
        }
        // Printable ASCII (0x7F is a legal XML 1.0 character) and the three legal controls.
        let char_data = ws || (c >= 0x20 && c < 0x80);
        if char_data {
            if c != b'"' && c != b'<' && c != b'&' {
                class |= ATTR_DQ;
            }
            if c != b'\'' && c != b'<' && c != b'&' {
                class |= ATTR_SQ;
            }
            if c != b'<' && c != b'&' && c != b'>' {
                class |= TEXT;
            }
            if c != b'-' {
                class |= COMMENT;
            }
            if c != b'>' {
                class |= CDATA;
            }
            if c != b'?' {
                class |= PI;
            }
        }
        table[b] = class;
        b += 1;
    }
    table
}

/// Is `b` in the class `mask`?
#[inline(always)]
pub(crate) fn is(b: u8, mask: u16) -> bool {
    CLASS[b as usize] & mask != 0
}

/// The index of the first byte at or after `i` that is not in `mask` (or `bytes.len()`).
#[inline(always)]
pub(crate) fn skip(bytes: &[u8], mut i: usize, mask: u16) -> usize {
    while let Some(&b) = bytes.get(i) {
        if CLASS[b as usize] & mask == 0 {
            break;
        }
        i += 1;
    }
    i
}

/// Where a character-data scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At an ASCII byte outside the scan's class, for the caller to handle.
    At(usize),
    /// The bytes ran out at this index (possibly at the lead byte of a UTF-8 sequence whose
    /// tail has not arrived): resume here.
    More(usize),
}

/// An error found at an index of the scanned bytes.
pub(crate) type Fault = (ErrorKind, usize);

/// The ASCII bytes (besides controls and non-ASCII) that stop a scan of class `mask`. Repeats
/// pad the array; `mask` is a constant at every call, so this folds away.
#[inline(always)]
fn stop_bytes(mask: u16) -> [u8; 3] {
    match mask {
        ATTR_DQ => [b'"', b'<', b'&'],
        ATTR_SQ => [b'\'', b'<', b'&'],
        TEXT => [b'<', b'&', b'>'],
        COMMENT => [b'-'; 3],
        CDATA => [b'>'; 3],
        _ => [b'?'; 3],
    }
}

/// Skips 8 bytes at a time while none of them needs a look (all printable ASCII, none of
/// `stops`), and returns the index of the first byte that does, found within its word without a
/// byte loop; or, with fewer than 8 bytes left, the index where they start. Tab, LF and CR
/// also need a look: legal, but rare enough for the caller to step over one at a time.
#[inline(always)]
fn skip_words(bytes: &[u8], mut i: usize, stops: [u8; 3]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte. Borrows can also flag a byte above a zero byte, never
    // below the first one, so the lowest flag is exact: that is all that is used.
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    while let Some(Ok(word)) = bytes.get(i..i + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_le_bytes(word);
        // Bytes below 0x20 (same borrow argument) or with the high bit set (non-ASCII).
        let mut needs_look = x.wrapping_sub(ONES * 0x20) & !x & HIGHS | x & HIGHS;
        for stop in stops {
            needs_look |= zero_bytes(x ^ (ONES * u64::from(stop)));
        }
        if needs_look != 0 {
            // Little-endian: the lowest flagged bit is in the first flagged byte.
            return i + (needs_look.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// Scans character data from `i` over bytes in `mask` and over non-ASCII characters, checking
/// that everything is a legal XML `Char` in valid UTF-8.
/// Generic over the class, so each context gets its own loop with its constants folded in.
#[inline]
pub(crate) fn scan_chars<const MASK: u16>(bytes: &[u8], mut i: usize) -> Result<Stop, Fault> {
    let stops = stop_bytes(MASK);
    loop {
        i = skip_words(bytes, i, stops);
        match bytes.get(i) {
            None => return Ok(Stop::More(i)),
            // Tab, LF, CR, or one of the last few bytes, which no word covers.
            Some(&b) if CLASS[b as usize] & MASK != 0 => i += 1,
            Some(&b) if b >= 0x80 => match utf8_char_len(bytes, i)? {
                Some(len) => i += len,
                None => return Ok(Stop::More(i)),
            },
            // Tab, LF and CR are in every character-data class, so this is a forbidden one.
            Some(&b) if b < 0x20 => return Err((ErrorKind::InvalidChar, i)),
            Some(_) => return Ok(Stop::At(i)),
        }
    }
}

/// Checks the UTF-8 sequence whose lead byte (>= 0x80) is at `i`: `Some(length)` when it is
/// complete and encodes a legal XML `Char`, `None` when it is a valid prefix cut short by the
/// end of `bytes`.
///
/// A sequence split across two chunks ends up here twice: once with its head only (`None`: the
/// caller resumes at the lead byte), then whole once the tail has been appended:
/// ```text
/// chunk 1: ... 3 0 0 0 \xE2 \x82 |
/// chunk 2:                       \xAC " ...
///              ^ lead byte: the scan resumes here, not at the tail
/// ```
/// The error offset is that of the first byte that no valid sequence could contain, so it is
/// the same however the stream is cut.
pub(crate) fn utf8_char_len(bytes: &[u8], i: usize) -> Result<Option<usize>, Fault> {
    let lead = match bytes.get(i) {
        Some(&b) => b,
        None => return Ok(None),
    };
    // The accepted range of the second byte narrows to exclude overlong forms, surrogates
    // (ED A0..BF) and code points above U+10FFFF (F4 90..).
    let (len, second_lo, second_hi) = match lead {
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xF0 => (4, 0x90, 0xBF),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        _ => return Err((ErrorKind::InvalidUtf8, i)),
    };
    for k in 1..len {
        let Some(&b) = bytes.get(i + k) else {
            return Ok(None);
        };
        let (lo, hi) = if k == 1 {
            (second_lo, second_hi)
        } else {
            (0x80, 0xBF)
        };
        if b < lo || b > hi {
            return Err((ErrorKind::InvalidUtf8, i + k));
        }
    }
    // U+FFFE and U+FFFF are valid UTF-8 but not XML characters.
    if lead == 0xEF
        && bytes.get(i + 1) == Some(&0xBF)
        && matches!(bytes.get(i + 2), Some(0xBE | 0xBF))
    {
        return Err((ErrorKind::InvalidChar, i));
    }
    Ok(Some(len))
}

/// The XML 1.0 `Char` production.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Is `name` a name of xmlwire's ASCII name alphabet?
pub(crate) fn is_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((&first, rest)) => is(first, NAME_START) && rest.iter().all(|&b| is(b, NAME)),
        None => false,
    }
}

/// Longest reference accepted, from `&` to `;` inclusive. The longest meaningful ones are ten
/// bytes (`&#x10FFFF;`); the cap leaves room for leading zeros while keeping the rescan of a
/// reference cut by a chunk boundary bounded.
pub(crate) const MAX_REFERENCE_BYTES: usize = 32;

/// A reference, parsed from its `&`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reference {
    /// The character it stands for, and the reference's length including `&` and `;`.
    Char(char, usize),
    /// The bytes end before the reference does.
    Incomplete,
    /// Malformed: what, and the index (relative to the `&`) of the offending byte.
    Bad(ErrorKind, usize),
}

/// Parses the reference starting at `bytes[0]` (an `&`): one of the five predefined entities,
/// `&#DDD;` or `&#xHHH;`.
pub(crate) fn parse_reference(bytes: &[u8]) -> Reference {
    match bytes.get(1) {
        None => Reference::Incomplete,
        Some(b'#') => parse_char_reference(bytes),
        Some(&b) if is(b, NAME_START) => parse_entity_reference(bytes),
        Some(_) => Reference::Bad(ErrorKind::MalformedReference, 1),
    }
}

fn parse_char_reference(bytes: &[u8]) -> Reference {
    let (radix, digits_start) = match bytes.get(2) {
        None => return Reference::Incomplete,
        Some(b'x') => (16, 3),
        Some(_) => (10, 2),
    };
    let mut value: u32 = 0;
    let mut k = digits_start;
    let terminator = loop {
        if k >= MAX_REFERENCE_BYTES {
            return Reference::Bad(ErrorKind::MalformedReference, k);
        }
        let Some(&b) = bytes.get(k) else {
            return Reference::Incomplete;
        };
        match char::from(b).to_digit(radix) {
            // Saturate just above the Unicode range, so leading zeros are harmless and any
            // overflow is simply "too big".
            Some(digit) => value = (value * radix + digit).min(0x11_0000),
            None => break b,
        }
        k += 1;
    };
    if k == digits_start {
        return Reference::Bad(ErrorKind::MalformedReference, k);
    }
    if terminator != b';' {
        return Reference::Bad(ErrorKind::MissingSemicolon, k);
    }
    match char::from_u32(value) {
        Some(c) if is_xml_char(c) => Reference::Char(c, k + 1),
        _ => Reference::Bad(ErrorKind::InvalidCharRef, 0),
    }
}

fn parse_entity_reference(bytes: &[u8]) -> Reference {
    let mut k = 1;
    let terminator = loop {
        if k >= MAX_REFERENCE_BYTES {
            return Reference::Bad(ErrorKind::MalformedReference, k);
        }
        let Some(&b) = bytes.get(k) else {
            return Reference::Incomplete;
        };
        if !is(b, NAME) {
            break b;
        }
        k += 1;
    };
    if terminator != b';' {
        return Reference::Bad(ErrorKind::MissingSemicolon, k);
    }
    let c = match bytes.get(1..k) {
        Some(b"amp") => '&',
        Some(b"lt") => '<',
        Some(b"gt") => '>',
        Some(b"quot") => '"',
        Some(b"apos") => '\'',
        _ => return Reference::Bad(ErrorKind::UnknownEntity, 0),
    };
    Reference::Char(c, k + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse_reference(b"&amp;x"), Reference::Char('&', 5));
        assert_eq!(parse_reference(b"&#x41;"), Reference::Char('A', 6));
        assert_eq!(parse_reference(b"&#0065;"), Reference::Char('A', 7));
        assert_eq!(
            parse_reference(b"&#x1F600;"),
            Reference::Char('\u{1F600}', 9)
        );
        assert_eq!(parse_reference(b"&am"), Reference::Incomplete);
        assert_eq!(parse_reference(b"&#x"), Reference::Incomplete);
        assert_eq!(
            parse_reference(b"&#0;"),
            Reference::Bad(ErrorKind::InvalidCharRef, 0)
        );
        assert_eq!(
            parse_reference(b"&#xD800;"),
            Reference::Bad(ErrorKind::InvalidCharRef, 0)
        );
        assert_eq!(
            parse_reference(b"&#x110000;"),
            Reference::Bad(ErrorKind::InvalidCharRef, 0)
        );
        assert_eq!(
            parse_reference(b"&#99999999999999;"),
            Reference::Bad(ErrorKind::InvalidCharRef, 0)
        );
        assert_eq!(
            parse_reference(b"&amp "),
            Reference::Bad(ErrorKind::MissingSemicolon, 4)
        );
        assert_eq!(
            parse_reference(b"&#;"),
            Reference::Bad(ErrorKind::MalformedReference, 2)
        );
        assert_eq!(
            parse_reference(b"& "),
            Reference::Bad(ErrorKind::MalformedReference, 1)
        );
        assert_eq!(
            parse_reference(b"&nbsp;"),
            Reference::Bad(ErrorKind::UnknownEntity, 0)
        );
    }

    #[test]
    fn skip_words_finds_the_first_byte_that_needs_a_look() {
        // Against the plain definition, on bytes drawn from the interesting ones.
        let interesting = [
            b'a', b' ', b'~', 0x7F, b'"', b'<', b'&', b'>', b'-', 0, 0x1F, 0x80, 0xFF,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for mask in [ATTR_DQ, ATTR_SQ, TEXT, COMMENT, CDATA, PI] {
            let stops = stop_bytes(mask);
            for _ in 0..20_000 {
                let mut bytes = [0u8; 19];
                for b in &mut bytes {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *b = interesting[(state % interesting.len() as u64) as usize];
                }
                let needs_look = |b: u8| !(0x20..0x80).contains(&b) || stops.contains(&b);
                let first = bytes.iter().position(|&b| needs_look(b));
                let found = skip_words(&bytes, 0, stops);
                match first {
                    Some(at) if at < 16 => assert_eq!(found, at, "{bytes:?}"),
                    // Past the last whole word: stopped where the words end, or earlier.
                    _ => assert!(found == 16, "{bytes:?}"),
                }
            }
        }
    }

    #[test]
    fn utf8() {
        assert_eq!(utf8_char_len("é".as_bytes(), 0), Ok(Some(2)));
        assert_eq!(utf8_char_len(b"\xE2\x82", 0), Ok(None));
        assert_eq!(
            utf8_char_len(b"\xE2\x41", 0),
            Err((ErrorKind::InvalidUtf8, 1))
        );
        assert_eq!(
            utf8_char_len(b"\xED\xA0\x80", 0),
            Err((ErrorKind::InvalidUtf8, 1))
        );
        assert_eq!(
            utf8_char_len(b"\xC0\x80", 0),
            Err((ErrorKind::InvalidUtf8, 0))
        );
        assert_eq!(
            utf8_char_len(b"\xEF\xBF\xBF", 0),
            Err((ErrorKind::InvalidChar, 0))
        );
        assert_eq!(utf8_char_len("\u{10FFFF}".as_bytes(), 0), Ok(Some(4)));
        assert_eq!(
            utf8_char_len(b"\xF4\x90\x80\x80", 0),
            Err((ErrorKind::InvalidUtf8, 1))
        );
    }
}
