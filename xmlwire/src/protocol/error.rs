//! Why a well-formed message is not a valid one.

use std::fmt;

use super::values::ErrorCode;
use super::ErrorMessage;
use crate::{Frame, Span, XmlStr};

/// What is wrong with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// The tokens do not make one element (only for frames not made by a [`Reader`](crate::Reader)).
    BrokenFrame,
    /// An element this protocol does not have here.
    UnknownElement,
    /// An attribute this element does not have.
    UnknownAttribute,
    /// An attribute appears twice.
    DuplicateAttribute,
    /// A required attribute is missing.
    MissingAttribute,
    /// A child element appears more often than allowed.
    DuplicateChild,
    /// A required child element is missing.
    MissingChild,
    /// Character data (other than whitespace) where only elements, or nothing, may stand.
    UnexpectedText,
    /// Text made of pieces (text and CDATA, or split by a comment) where one piece is expected.
    SplitText,
    /// A character XML cannot carry (only in messages built by a program).
    BadCharacter,
    /// A number with no digits.
    EmptyNumber,
    /// A number with something other than the digits 0-9 (sign, point, space, reference).
    NotDecimal,
    /// A number with a leading zero.
    LeadingZero,
    /// A number above 18446744073709551615.
    Overflow,
    /// A flag other than `0` or `1`.
    BadFlag,
    /// A value that is none of the attribute's keywords.
    BadKeyword,
    /// Not lowercase hex with an even number of digits.
    BadHex,
    /// Hex longer than 128 characters.
    HexTooLong,
    /// Not canonical base64.
    BadBase64,
    /// A range start of 0: numbers start at 1.
    ZeroStart,
    /// A range whose end is not above its start.
    EmptyRange,
    /// A range whose end is below its start.
    ReversedRange,
    /// A position outside its range.
    OutsideRange,
    /// Numbers that must increase do not.
    NotIncreasing,
    /// More items than the list holds (more than 8 perfect numbers).
    TooMany,
    /// Attributes that come together (`lo`, `hi`, `done` of a compute) do not all appear.
    PartialGroup,
}

impl Problem {
    /// A short English description.
    pub fn description(self) -> &'static str {
        match self {
            Problem::BrokenFrame => "tokens do not form one element",
            Problem::UnknownElement => "unknown element",
            Problem::UnknownAttribute => "unknown attribute",
            Problem::DuplicateAttribute => "duplicate attribute",
            Problem::MissingAttribute => "missing attribute",
            Problem::DuplicateChild => "element appears more than once",
            Problem::MissingChild => "missing child element",
            Problem::UnexpectedText => "text is not allowed here",
            Problem::SplitText => "text must be one piece: plain text or one CDATA section",
            Problem::BadCharacter => "character not allowed in XML",
            Problem::EmptyNumber => "empty number",
            Problem::NotDecimal => "number must be decimal digits only",
            Problem::LeadingZero => "number has a leading zero",
            Problem::Overflow => "number does not fit in 64 bits",
            Problem::BadFlag => "flag must be 0 or 1",
            Problem::BadKeyword => "unknown keyword",
            Problem::BadHex => "not lowercase hex with an even number of digits",
            Problem::HexTooLong => "hex longer than 128 digits",
            Problem::BadBase64 => "not canonical base64",
            Problem::ZeroStart => "range must start at 1 or above",
            Problem::EmptyRange => "range end must be above its start",
            Problem::ReversedRange => "range end must not be below its start",
            Problem::OutsideRange => "value outside its range",
            Problem::NotIncreasing => "numbers must increase",
            Problem::TooMany => "too many",
            Problem::PartialGroup => "lo, hi and done must appear together",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The element or attribute a [`DecodeError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Name {
    /// A name the protocol knows (a missing attribute, a bad value of a known attribute).
    Known(&'static str),
    /// A name as it stands in the frame (an unknown element or attribute).
    At(Span),
}

/// A message that is well-formed XML but not valid: no allocation, just a code, what is wrong,
/// and the element or attribute concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// The code of the `<error>` to reply with.
    pub code: ErrorCode,
    /// What is wrong.
    pub problem: Problem,
    /// Where.
    pub name: Name,
}

impl DecodeError {
    pub(crate) fn known(problem: Problem, name: &'static str) -> Self {
        let code = match problem {
            Problem::BrokenFrame => ErrorCode::BadXml,
            _ => ErrorCode::BadMessage,
        };
        DecodeError {
            code,
            problem,
            name: Name::Known(name),
        }
    }

    pub(crate) fn at(problem: Problem, span: Span) -> Self {
        DecodeError {
            name: Name::At(span),
            ..Self::known(problem, "")
        }
    }

    /// The static description of the problem.
    pub fn description(&self) -> &'static str {
        self.problem.description()
    }

    /// The element or attribute name, looked up in the frame the error came from (empty for a
    /// span that is not in `frame`).
    pub fn name<'a>(&self, frame: &Frame<'a>) -> &'a str {
        match self.name {
            Name::Known(name) => name,
            Name::At(span) => frame.str(span),
        }
    }

    /// The `<error>` to send back for this error on a message from `frame`.
    pub fn to_message<'a>(&self, frame: &Frame<'a>) -> ErrorMessage<'a> {
        let name = self.name(frame);
        ErrorMessage {
            code: self.code,
            message: XmlStr::Plain(self.description()),
            about: (!name.is_empty()).then_some(XmlStr::Plain(name)),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description())?;
        match self.name {
            Name::Known(name) => write!(f, " ({name})"),
            Name::At(span) => write!(f, " (name at bytes {}..{})", span.start, span.end),
        }
    }
}

impl std::error::Error for DecodeError {}
