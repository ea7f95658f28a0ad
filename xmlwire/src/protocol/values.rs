//! The value types of attributes and contents: keywords, numbers, hex and base64 strings, the
//! fixed-capacity list of perfect numbers, and program payloads.

use std::fmt;

use super::base64;
use super::error::Problem;
use crate::{ErrorKind, XmlStr};

/// An enum whose values travel as fixed keywords.
pub(crate) trait Keyword: Sized + Copy {
    /// The keyword's value, or `None` when `text` is none of them.
    fn from_keyword(text: &str) -> Option<Self>;
}

/// Declares an enum that travels as a keyword, with `as_str`, `from_name`, `ALL` and `Display`.
macro_rules! keywords {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub enum $name {
            $( $(#[$vmeta])* #[doc = concat!("Written `", $text, "`.")] $variant, )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The keyword as it is written on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                }
            }

            /// The value written `text` on the wire, if any.
            pub fn from_name(text: &str) -> Option<Self> {
                match text {
                    $( $text => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl Keyword for $name {
            fn from_keyword(text: &str) -> Option<Self> {
                Self::from_name(text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How a compute tests numbers: the kernel's own enum, written `naive`, `trial` or `sieve`.
pub use sigma_kernel::Algorithm;

impl Keyword for Algorithm {
    fn from_keyword(text: &str) -> Option<Self> {
        Algorithm::from_name(text)
    }
}

keywords! {
    /// The language of a program to run.
    pub enum Language {
        /// C, compiled.
        C = "c",
        /// C++, compiled.
        Cpp = "cpp",
        /// Rust, compiled.
        Rust = "rust",
        /// Python 3, interpreted.
        Python = "python",
    }
}

keywords! {
    /// How manage picks the compute that runs a program.
    pub enum Schedule {
        /// Any connected compute, drawn at random.
        Random = "random",
        /// The computes in turn.
        RoundRobin = "round-robin",
        /// The compute with the fewest jobs running, then the lowest id.
        LeastLoaded = "least-loaded",
    }
}

keywords! {
    /// How a program run ended.
    pub enum JobStatus {
        /// It ran and exited with code 0.
        Ok = "ok",
        /// It did not compile; the compiler's output says why.
        CompileError = "compile-error",
        /// It exited with a non-zero code.
        RuntimeError = "runtime-error",
        /// A signal ended it (other than the ones the limits send).
        Signal = "signal",
        /// It used more than its time limit (CPU or wall clock) and was killed.
        TimeLimit = "time-limit",
        /// It used more than its memory limit.
        MemoryLimit = "memory-limit",
        /// It wrote more output than the compute keeps, and was killed.
        OutputLimit = "output-limit",
        /// The compute could not run it (a failure of the compute, not of the program).
        InternalError = "internal-error",
        /// The job was refused before it ran (bad name, limits over the maximum, ...).
        Rejected = "rejected",
    }
}

keywords! {
    /// The code of an `<error>` message. docs/protocol.md says when each is sent.
    pub enum ErrorCode {
        /// The bytes are not well-formed XML, or break the reader's limits on depth, names or
        /// attributes.
        BadXml = "bad-xml",
        /// Well-formed XML that is not a valid message: unknown element or attribute, missing
        /// attribute, bad number, bad hex, and so on.
        BadMessage = "bad-message",
        /// The hello's protocol version is not the receiver's.
        Version = "version",
        /// Authentication is required and missing, or the MAC or session is wrong.
        Unauthorized = "unauthorized",
        /// A valid message that is not allowed at this point of the conversation.
        OutOfOrder = "out-of-order",
        /// A progress or result names a lease the sender does not hold.
        UnknownLease = "unknown-lease",
        /// The receiver cannot take this now (no compute for a run, too many connections).
        Busy = "busy",
        /// manage is shutting down and takes no new work.
        ShuttingDown = "shutting-down",
        /// A message is larger than the receiver accepts.
        TooLarge = "too-large",
        /// The receiver failed on its own side.
        Internal = "internal",
    }
}

impl ErrorCode {
    /// The code to send when the [`Reader`](crate::Reader) fails: `too-large` for a message
    /// over the size or token limit, `bad-xml` for everything else.
    pub fn for_reader_error(error: &crate::Error) -> ErrorCode {
        match error.kind {
            ErrorKind::MessageTooLarge | ErrorKind::TooManyTokens => ErrorCode::TooLarge,
            _ => ErrorCode::BadXml,
        }
    }
}

/// Parses a protocol number: ASCII digits only, no sign, no leading zero (except `0` itself),
/// no whitespace, at most `u64::MAX`. References such as `&#49;` are not digits.
pub(crate) fn parse_u64(text: &str) -> Result<u64, Problem> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(Problem::EmptyNumber);
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(Problem::NotDecimal);
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(Problem::LeadingZero);
    }
    bytes.iter().try_fold(0u64, |value, &digit| {
        value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .ok_or(Problem::Overflow)
    })
}

/// Parses a flag: `1` or `0`.
pub(crate) fn parse_flag(text: &str) -> Result<bool, Problem> {
    match text {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(Problem::BadFlag),
    }
}

/// A token in lowercase hexadecimal: an even number of `0-9a-f`, 2 to [`Hex::MAX_LEN`]
/// characters (1 to 64 bytes). Sessions, nonces and MACs travel this way. Since the form is
/// canonical, two tokens are equal exactly when their bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hex<'a>(&'a str);

impl<'a> Hex<'a> {
    /// The longest hex token, in characters.
    pub const MAX_LEN: usize = 128;

    /// The single byte 0.
    pub const ZERO: Hex<'static> = Hex("00");

    /// `text` as a hex token, if it is one.
    pub fn new(text: &'a str) -> Option<Self> {
        Self::parse(text).ok()
    }

    pub(crate) fn parse(text: &'a str) -> Result<Self, Problem> {
        let bytes = text.as_bytes();
        if bytes.len() > Self::MAX_LEN {
            return Err(Problem::HexTooLong);
        }
        let hex = |c: &u8| matches!(c, b'0'..=b'9' | b'a'..=b'f');
        if bytes.is_empty() || !bytes.len().is_multiple_of(2) || !bytes.iter().all(hex) {
            return Err(Problem::BadHex);
        }
        Ok(Hex(text))
    }

    /// The characters.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// The bytes the characters stand for.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        let nibble = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            _ => c.wrapping_sub(b'a').wrapping_add(10) & 0xf,
        };
        self.0
            .as_bytes()
            .chunks_exact(2)
            .map(move |pair| nibble(pair[0]) << 4 | nibble(pair[1]))
    }

    /// Appends the lowercase hex of `bytes` to `out` (for a program building a token).
    pub fn encode_into(bytes: &[u8], out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        out.reserve(bytes.len() * 2);
        for &b in bytes {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
    }
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Bytes in canonical base64 (standard alphabet, `=` padding, no whitespace), borrowed as they
/// travel; decoded only on demand, into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Base64<'a>(&'a str);

impl<'a> Base64<'a> {
    /// No bytes.
    pub const EMPTY: Base64<'static> = Base64("");

    /// `text` as base64, if it is canonical base64.
    pub fn new(text: &'a str) -> Option<Self> {
        base64::is_canonical(text.as_bytes()).then_some(Base64(text))
    }

    /// The base64 characters.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Whether it stands for no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many bytes it stands for.
    pub fn decoded_len(&self) -> usize {
        base64::decoded_len(self.0.as_bytes())
    }

    /// Appends the bytes to `out`.
    pub fn decode_into(&self, out: &mut Vec<u8>) {
        base64::decode_into(self.0.as_bytes(), out);
    }

    /// Appends the base64 of `bytes` to `out`; `Base64::new(&out[start..])` then holds them.
    pub fn encode_into(bytes: &[u8], out: &mut String) {
        base64::encode_into(bytes, out);
    }
}

impl fmt::Display for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The perfect numbers found in one range: at most [`PerfectList::CAPACITY`], since only 8
/// perfect numbers lie below 2^64. Stored inline: no allocation.
#[derive(Clone, Copy, Default)]
pub struct PerfectList {
    numbers: [u64; PerfectList::CAPACITY],
    len: u8,
}

/// [`PerfectList::push`] on a full list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListFull;

impl PerfectList {
    /// The most numbers a list holds.
    pub const CAPACITY: usize = 8;

    /// An empty list.
    pub const fn new() -> Self {
        PerfectList {
            numbers: [0; PerfectList::CAPACITY],
            len: 0,
        }
    }

    /// A list of `numbers`, or `None` when there are more than [`PerfectList::CAPACITY`].
    pub fn from_slice(numbers: &[u64]) -> Option<Self> {
        let mut list = Self::new();
        for &n in numbers {
            list.push(n).ok()?;
        }
        Some(list)
    }

    /// Appends `n`, unless the list is full.
    pub fn push(&mut self, n: u64) -> Result<(), ListFull> {
        let slot = self
            .numbers
            .get_mut(usize::from(self.len))
            .ok_or(ListFull)?;
        *slot = n;
        self.len += 1;
        Ok(())
    }

    /// The numbers, in order.
    pub fn as_slice(&self) -> &[u64] {
        &self.numbers[..usize::from(self.len)]
    }

    /// How many numbers.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The numbers, in order.
    pub fn iter(&self) -> std::iter::Copied<std::slice::Iter<'_, u64>> {
        self.as_slice().iter().copied()
    }
}

impl PartialEq for PerfectList {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for PerfectList {}

impl fmt::Debug for PerfectList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl<'l> IntoIterator for &'l PerfectList {
    type Item = u64;
    type IntoIter = std::iter::Copied<std::slice::Iter<'l, u64>>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A program's source or standard input: XML text when it is text XML can carry, else base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Payload<'a> {
    /// Text, escaped (or in one CDATA section) on the wire.
    Text(XmlStr<'a>),
    /// Any bytes, as `encoding="base64"`.
    Base64(Base64<'a>),
}

impl Payload<'_> {
    /// No bytes.
    pub const EMPTY: Payload<'static> = Payload::Text(XmlStr::Plain(""));

    /// Appends the bytes (the text's UTF-8, or the decoded base64) to `out`.
    pub fn bytes_into(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Text(text) => {
                if let Some(plain) = text.as_plain() {
                    out.extend_from_slice(plain.as_bytes());
                    return;
                }
                for c in text.chars() {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
            Payload::Base64(data) => data.decode_into(out),
        }
    }
}

/// One captured output of a program run (stdout, stderr, or the compiler's), as base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Output<'a> {
    /// The bytes captured.
    pub data: Base64<'a>,
    /// The program wrote more than this; the rest was dropped.
    pub truncated: bool,
}

impl Output<'_> {
    /// Nothing captured, nothing dropped: the output is left out of the message.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && !self.truncated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("10"), Ok(10));
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), Err(Problem::Overflow));
        assert_eq!(parse_u64("99999999999999999999"), Err(Problem::Overflow));
        assert_eq!(parse_u64(""), Err(Problem::EmptyNumber));
        assert_eq!(parse_u64("01"), Err(Problem::LeadingZero));
        assert_eq!(parse_u64("00"), Err(Problem::LeadingZero));
        for bad in ["+1", "-1", "1.0", "1e3", " 1", "1 ", "0x10", "&#49;", "١"] {
            assert_eq!(parse_u64(bad), Err(Problem::NotDecimal), "{bad:?}");
        }
    }

    #[test]
    fn hex() {
        let mut s = String::new();
        Hex::encode_into(&[0x00, 0x9f, 0xa0, 0xff], &mut s);
        assert_eq!(s, "009fa0ff");
        let hex = Hex::new(&s).unwrap();
        assert_eq!(hex.bytes().collect::<Vec<_>>(), [0x00, 0x9f, 0xa0, 0xff]);
        assert!(Hex::new(&"ab".repeat(64)).is_some());
        assert_eq!(Hex::parse(&"ab".repeat(65)), Err(Problem::HexTooLong));
        for bad in ["", "a", "abc", "AB", "0g", "a b", "+a"] {
            assert_eq!(Hex::parse(bad), Err(Problem::BadHex), "{bad:?}");
        }
    }

    #[test]
    fn perfect_list_holds_eight() {
        let mut list = PerfectList::new();
        for n in 0..8 {
            assert_eq!(list.push(n), Ok(()));
        }
        assert_eq!(list.push(8), Err(ListFull));
        assert_eq!(list.len(), 8);
        assert_eq!(list.iter().sum::<u64>(), 28);
        assert!(PerfectList::from_slice(&[1; 9]).is_none());
        assert_eq!(
            PerfectList::from_slice(&[6, 28]).unwrap().as_slice(),
            &[6, 28]
        );
    }

    #[test]
    fn keywords_round_trip() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(JobStatus::ALL.len(), 9);
        assert_eq!(
            Schedule::from_name("round-robin"),
            Some(Schedule::RoundRobin)
        );
        assert_eq!(Algorithm::from_name("Sieve"), None);
    }
}
