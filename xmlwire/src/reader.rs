//! The push reader: bytes in, complete messages out.
//!
//! The reader keeps one buffer. Bytes are appended at its end; the scan position only moves
//! forward; a small `Copy` state enum says what construct the scan stopped in, so the next call
//! resumes exactly there. Every position a state remembers is relative to the start of the
//! current message, so moving the unfinished message to the front of the buffer (done only when
//! room is needed) changes nothing but two indices.
//!
//! One concern, kept whole past 800 lines: the states of the resumable scan and the moves
//! between them read best side by side; split, each half would need the other to be followed.

use crate::scan::{self, Reference, Stop};
use crate::{Error, ErrorKind, Span, Token};

/// Limits on what a [`Reader`] accepts; anything over them is an error, never a reallocation
/// without bound.
///
/// The defaults ([`Limits::DEFAULT`]) are generous for sigma's messages, whose largest (a status
/// document) is a few KiB: 1 MiB per message, nesting 32 deep, 64 attributes per element, names
/// of 64 bytes, 100,000 tokens per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, in bytes (also the cap on the reader's buffer). Values above
    /// `u32::MAX` are treated as `u32::MAX`, since spans are `u32`.
    pub max_message_bytes: usize,
    /// Deepest element nesting.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name_bytes: usize,
    /// Most tokens in one message.
    pub max_tokens: usize,
}

impl Limits {
    /// 1 MiB messages, depth 32, 64 attributes, 64-byte names, 100,000 tokens.
    pub const DEFAULT: Limits = Limits {
        max_message_bytes: 1 << 20,
        max_depth: 32,
        max_attributes: 64,
        max_name_bytes: 64,
        max_tokens: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A complete message: its bytes and its tokens, whose spans index `bytes`.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The message's bytes, from its `<` to its final `>`.
    pub bytes: &'a [u8],
    /// Its tokens, in order.
    pub tokens: &'a [Token],
    /// Stream offset of `bytes[0]`.
    pub offset: u64,
}

impl<'a> Frame<'a> {
    /// The text a span covers. Spans from this frame's tokens are always valid UTF-8 on char
    /// boundaries, since the reader validated them; any other span (out of range, or cutting a
    /// character) gives `""` rather than a panic.
    ///
    /// This checks the bytes again (`str::from_utf8`, fast on ASCII): the crate forbids
    /// `unsafe`, so it cannot skip that.
    pub fn str(&self, span: Span) -> &'a str {
        self.bytes
            .get(span.start as usize..span.end as usize)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or("")
    }

    /// The raw bytes a span covers (`&[]` for a span out of range).
    pub fn slice(&self, span: Span) -> &'a [u8] {
        self.bytes
            .get(span.start as usize..span.end as usize)
            .unwrap_or(&[])
    }
}

/// Where the scan stopped. Positions are relative to the start of the current message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between messages: whitespace, comments, processing instructions may come.
    Idle,
    /// Just after a `<` at `lt`.
    Lt { lt: u32 },
    /// In a start tag's name, which began at `name`.
    StartName { name: u32 },
    /// In a start tag, after its name or an attribute value; `spaced` once whitespace was seen,
    /// as an attribute name needs some before it.
    InTag { spaced: bool },
    /// After `/` in a start tag: `>` must follow.
    TagSlash,
    /// In an attribute name that began at `name`.
    AttrName { name: u32 },
    /// After an attribute name: whitespace, then `=`.
    AttrEq { name: Span },
    /// After `=`: whitespace, then a quote.
    AttrQuote { name: Span },
    /// In an attribute value that began at `value`, closed by `quote`.
    AttrValue { name: Span, value: u32, quote: u8 },
    /// In an end tag's name, which began at `name` (the `<` is at `name - 2`).
    EndName { name: u32 },
    /// After an end tag's name: whitespace, then `>`.
    EndTail,
    /// In element content; the current run of text began at `text`.
    Content { text: u32 },
    /// After `<!` (the `<` at `lt`): `--`, `[CDATA[` or `DOCTYPE` must follow.
    Bang { lt: u32 },
    /// Inside a comment.
    Comment,
    /// Inside a CDATA section whose text began at `text`.
    CData { text: u32 },
    /// In a processing instruction's target, which began at `name`.
    PiTarget { name: u32 },
    /// Inside a processing instruction, after its target.
    Pi,
}

/// How the scan of the buffered bytes ended.
enum Scanned {
    /// A message is complete, ending before this index.
    Message(usize),
    /// More bytes are needed; resume at this index.
    More(usize),
    /// A comment or processing instruction between messages ended before this index.
    Skipped(usize),
}

/// Incremental reader: `feed` bytes (or `read_from` a socket), then take messages with
/// `next_message` until it says it needs more.
///
/// ```
/// use xmlwire::{Limits, Reader, Token};
/// let mut reader = Reader::new(Limits::default());
/// reader.feed(b"<ack lease=\"1").unwrap();
/// assert!(reader.next_message().unwrap().is_none()); // needs more
/// reader.feed(b"7\"/> <req").unwrap();
/// let frame = reader.next_message().unwrap().unwrap();
/// assert_eq!(frame.bytes, b"<ack lease=\"17\"/>");
/// match frame.tokens[1] {
///     Token::Attribute { name, value } => {
///         assert_eq!((frame.str(name), frame.str(value)), ("lease", "17"))
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(reader.next_message().unwrap().is_none());
/// assert!(reader.finish().is_err()); // `<req` is unfinished
/// ```
pub struct Reader {
    /// Allocated room; `buf[..filled]` holds bytes fed and not yet released.
    buf: Vec<u8>,
    filled: usize,
    /// Start of the current message (or of the unconsumed bytes between messages).
    start: usize,
    /// Scan position: everything before it has been checked.
    pos: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    state: State,
    /// The tokens of the current message.
    tokens: Vec<Token>,
    /// Names of the open elements, innermost last.
    open: Vec<Span>,
    /// Attributes so far on the current start tag.
    attributes: usize,
    limits: Limits,
    failed: Option<Error>,
    /// The last `read_from` got less than the room it offered.
    short_read: bool,
}

/// Smallest buffer allocated; growth doubles from there up to the message cap. Small, because a
/// server holds one reader per connection and most protocol messages are under 200 bytes: a
/// busy stream grows its buffer in a few doublings, a quiet one stays cheap.
const MIN_BUFFER: usize = 512;

impl Reader {
    /// A reader with the given limits. It allocates nothing until bytes arrive.
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            max_message_bytes: limits.max_message_bytes.min(u32::MAX as usize),
            ..limits
        };
        Reader {
            buf: Vec::new(),
            filled: 0,
            start: 0,
            pos: 0,
            base: 0,
            state: State::Idle,
            tokens: Vec::new(),
            open: Vec::new(),
            attributes: 0,
            limits,
            failed: None,
            short_read: false,
        }
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends bytes. Fails (and keeps failing) once the stream is in error.
    ///
    /// The buffer holds the unfinished message plus what was fed since the last `next_message`
    /// call; callers that take out every message after each `feed` (as they should) keep it
    /// below `max_message_bytes` plus one chunk. `read_from` never grows it past the cap.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        self.make_room(bytes.len());
        // Appending past `filled` drops read_from's zeroed spare room, if any: extending copies
        // once, where resizing first would also zero.
        self.buf.truncate(self.filled);
        self.buf.extend_from_slice(bytes);
        self.filled = self.buf.len();
        Ok(())
    }

    /// Reads once from `source` straight into the buffer's spare room, growing it up to the
    /// message cap. Returns what `read` returned (0 is end of stream).
    ///
    /// Errors: the reader's own error (as `InvalidData`) once the stream is in error, and
    /// `OutOfMemory` if the buffer is full at the cap with bytes not yet taken out by
    /// `next_message` (take messages out after every read).
    pub fn read_from<R: std::io::Read>(&mut self, source: &mut R) -> std::io::Result<usize> {
        if let Some(error) = self.failed {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error));
        }
        if self.filled == self.buf.len() {
            self.make_room(1);
            // Grow by doubling up to the message cap; more than the cap is never needed, since
            // a message that fills it is already an error.
            let cap = self.limits.max_message_bytes.max(MIN_BUFFER);
            if self.filled == self.buf.len() && self.buf.len() < cap {
                let grown = (self.buf.len() * 2)
                    .max(self.buf.capacity())
                    .clamp(MIN_BUFFER, cap);
                self.buf.resize(grown, 0);
            }
            if self.filled == self.buf.len() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    "xmlwire reader buffer full: take messages out with next_message",
                ));
            }
        }
        let room = self.buf.get_mut(self.filled..).unwrap_or_default();
        let offered = room.len();
        let n = source.read(room)?;
        self.filled += n.min(offered);
        self.short_read = n < offered;
        Ok(n)
    }

    /// Whether the last successful `read_from` returned less than the room it offered. On a
    /// socket, that means its receive queue was empty at that moment: with edge-triggered
    /// readiness (epoll, mio) any later byte raises a new event, so another read now would
    /// only return `WouldBlock`. A caller can skip that system call, except when the event
    /// also said the peer closed (then it reads on to the end of stream).
    pub fn last_read_was_short(&self) -> bool {
        self.short_read
    }

    /// Frees the reader's buffers if no bytes are pending (between messages, everything fed
    /// taken out), so that a stream that goes quiet costs only the `Reader` itself; the next
    /// read allocates again. Stream offsets carry on. Returns whether anything was freed.
    pub fn release_memory(&mut self) -> bool {
        let idle = self.start == self.filled && self.state == State::Idle && self.failed.is_none();
        let holds = self.buf.capacity() + self.tokens.capacity() + self.open.capacity() > 0;
        if !(idle && holds) {
            return false;
        }
        self.base += self.filled as u64;
        self.filled = 0;
        self.start = 0;
        self.pos = 0;
        self.buf = Vec::new();
        self.tokens = Vec::new();
        self.open = Vec::new();
        true
    }

    /// Makes room for `wanted` more bytes after `filled` if it can by dropping released bytes:
    /// resets to the front for free when nothing is pending, else shifts the pending bytes (the
    /// unfinished message) to the front, only when the room is short.
    fn make_room(&mut self, wanted: usize) {
        if self.start == self.filled && self.state == State::Idle {
            self.base += self.filled as u64;
            self.filled = 0;
            self.start = 0;
            self.pos = 0;
        } else if self.buf.capacity() - self.filled < wanted && self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.base += self.start as u64;
            self.filled -= self.start;
            self.pos -= self.start;
            self.start = 0;
        }
    }

    /// The next complete message, or `Ok(None)` when more bytes are needed. The previous
    /// message's bytes are released by this call.
    pub fn next_message(&mut self) -> Result<Option<Frame<'_>>, Error> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        loop {
            if self.state == State::Idle {
                // Between messages, bytes are released as soon as they are passed over.
                let i = scan::skip(&self.buf[..self.filled], self.pos, scan::WS);
                self.start = i;
                self.pos = i;
                match self.buf[..self.filled].get(i) {
                    None => return Ok(None),
                    Some(b'<') => {
                        self.state = State::Lt { lt: 0 };
                        self.pos = i + 1;
                    }
                    Some(_) => return Err(self.fail(ErrorKind::JunkBetweenMessages, i)),
                }
            }
            let limit = self.start.saturating_add(self.limits.max_message_bytes);
            let end = self.filled.min(limit);
            match self.scan(end) {
                Ok(Scanned::Message(message_end)) => {
                    let message_start = self.start;
                    self.state = State::Idle;
                    self.start = message_end;
                    self.pos = message_end;
                    return Ok(Some(Frame {
                        bytes: &self.buf[message_start..message_end],
                        tokens: &self.tokens,
                        offset: self.base + message_start as u64,
                    }));
                }
                Ok(Scanned::Skipped(i)) => {
                    self.state = State::Idle;
                    self.pos = i;
                }
                Ok(Scanned::More(i)) => {
                    self.pos = i;
                    if end == limit {
                        // The message needs more bytes than the limit leaves it.
                        return Err(self.fail(ErrorKind::MessageTooLarge, end));
                    }
                    return Ok(None);
                }
                Err((kind, at)) => return Err(self.fail(kind, at)),
            }
        }
    }

    fn fail(&mut self, kind: ErrorKind, at: usize) -> Error {
        let error = Error {
            kind,
            offset: self.base + at as u64,
        };
        self.failed = Some(error);
        error
    }

    /// At end of stream: an error if a message was left unfinished. Call it once
    /// `next_message` has returned `Ok(None)`; bytes not yet scanned count as unfinished
    /// unless they are whitespace.
    pub fn finish(&self) -> Result<(), Error> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let pending = self.buf.get(self.pos..self.filled).unwrap_or_default();
        let only_whitespace = pending.iter().all(|&b| scan::is(b, scan::WS));
        if self.state == State::Idle && only_whitespace {
            Ok(())
        } else {
            Err(Error {
                kind: ErrorKind::UnexpectedEof,
                offset: self.base + self.filled as u64,
            })
        }
    }

    /// The stream offset of the next byte to be fed: the number of bytes fed so far.
    pub fn stream_len(&self) -> u64 {
        self.base + self.filled as u64
    }

    /// Line and column (both from 1; the column counts bytes) of a stream offset within the
    /// current message, counted from that message's first byte, while it is still buffered
    /// (always so for the reader's own error). `None` for an offset outside it. Computed on
    /// demand, for display only.
    pub fn line_col(&self, offset: u64) -> Option<(u64, u64)> {
        let index = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        let before = self.buf.get(self.start..index.min(self.filled))?;
        if index > self.filled {
            return None;
        }
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count() as u64;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |nl| nl + 1);
        Some((line, (before.len() - line_start) as u64 + 1))
    }

    /// Scans `buf[pos..end]` from the current state: the tokenizer proper.
    fn scan(&mut self, end: usize) -> Result<Scanned, scan::Fault> {
        let Reader {
            buf,
            start,
            pos,
            state,
            tokens,
            open,
            attributes,
            limits,
            ..
        } = self;
        let start = *start;
        let data = &buf[..end];
        let mut i = *pos;
        // Positions are stored relative to the message start; spans are too.
        let rel = |index: usize| (index - start) as u32;
        let abs = |relative: u32| start + relative as usize;
        let max_name = limits.max_name_bytes;
        macro_rules! more {
            ($st:expr) => {{
                *state = $st;
                return Ok(Scanned::More(i));
            }};
        }
        macro_rules! push {
            ($token:expr, $at:expr) => {{
                if tokens.len() >= limits.max_tokens {
                    return Err((ErrorKind::TooManyTokens, $at));
                }
                tokens.push($token);
            }};
        }
        let mut st = *state;
        loop {
            match st {
                State::Idle => return Ok(Scanned::Skipped(i)),
                State::Lt { lt } => match data.get(i) {
                    None => more!(st),
                    Some(b'/') => {
                        if open.is_empty() {
                            return Err((ErrorKind::UnexpectedCloseTag, abs(lt)));
                        }
                        i += 1;
                        st = State::EndName { name: rel(i) };
                    }
                    Some(b'!') => {
                        i += 1;
                        st = State::Bang { lt };
                    }
                    Some(b'?') => {
                        i += 1;
                        st = State::PiTarget { name: rel(i) };
                    }
                    Some(&b) if scan::is(b, scan::NAME_START) => {
                        if open.len() >= limits.max_depth {
                            return Err((ErrorKind::TooDeep, abs(lt)));
                        }
                        if open.is_empty() {
                            tokens.clear();
                        }
                        // The name is read here when it is all present; StartName resumes it.
                        let name_start = i;
                        i = scan::skip(data, i + 1, scan::NAME);
                        if i - name_start > max_name {
                            return Err((ErrorKind::NameTooLong, name_start + max_name));
                        }
                        if i == data.len() {
                            more!(State::StartName {
                                name: rel(name_start)
                            });
                        }
                        let span = Span {
                            start: rel(name_start),
                            end: rel(i),
                        };
                        push!(Token::ElementStart { name: span }, name_start - 1);
                        open.push(span);
                        *attributes = 0;
                        st = State::InTag { spaced: false };
                    }
                    Some(_) => return Err((ErrorKind::InvalidName, i)),
                },
                State::StartName { name } => {
                    i = scan::skip(data, i, scan::NAME);
                    let name_start = abs(name);
                    if i - name_start > max_name {
                        return Err((ErrorKind::NameTooLong, name_start + max_name));
                    }
                    if i == data.len() {
                        more!(st);
                    }
                    let span = Span {
                        start: name,
                        end: rel(i),
                    };
                    push!(Token::ElementStart { name: span }, name_start - 1);
                    open.push(span);
                    *attributes = 0;
                    st = State::InTag { spaced: false };
                }
                State::InTag { mut spaced } => loop {
                    // The common case runs straight through here: every attribute of a tag
                    // whose bytes are all present is read in this loop, without going back to
                    // the state dispatch. The states below it only resume a cut attribute.
                    let after_space = scan::skip(data, i, scan::WS);
                    spaced |= after_space > i;
                    i = after_space;
                    match data.get(i) {
                        None => more!(State::InTag { spaced }),
                        Some(b'>') => {
                            push!(Token::ElementOpen, i);
                            i += 1;
                            st = State::Content { text: rel(i) };
                            break;
                        }
                        Some(b'/') => match data.get(i + 1) {
                            Some(b'>') => {
                                push!(Token::ElementEmpty, i);
                                open.pop();
                                i += 2;
                                if open.is_empty() {
                                    *state = State::Idle;
                                    return Ok(Scanned::Message(i));
                                }
                                st = State::Content { text: rel(i) };
                                break;
                            }
                            None => {
                                i += 1;
                                more!(State::TagSlash);
                            }
                            Some(_) => return Err((ErrorKind::ExpectedTagEnd, i + 1)),
                        },
                        Some(&b) if scan::is(b, scan::NAME_START) => {
                            if !spaced {
                                return Err((ErrorKind::ExpectedWhitespace, i));
                            }
                            if *attributes >= limits.max_attributes {
                                return Err((ErrorKind::TooManyAttributes, i));
                            }
                            let name_start = i;
                            i = scan::skip(data, i + 1, scan::NAME);
                            if i - name_start > max_name {
                                return Err((ErrorKind::NameTooLong, name_start + max_name));
                            }
                            if i == data.len() {
                                more!(State::AttrName {
                                    name: rel(name_start)
                                });
                            }
                            let name = new_attribute_name(tokens, data, start, name_start, i)?;
                            i = scan::skip(data, i, scan::WS);
                            match data.get(i) {
                                None => more!(State::AttrEq { name }),
                                Some(b'=') => i += 1,
                                Some(_) => return Err((ErrorKind::ExpectedEquals, i)),
                            }
                            i = scan::skip(data, i, scan::WS);
                            let quote = match data.get(i) {
                                None => more!(State::AttrQuote { name }),
                                Some(&quote) if quote == b'"' || quote == b'\'' => quote,
                                Some(_) => return Err((ErrorKind::ExpectedQuote, i)),
                            };
                            i += 1;
                            let value = rel(i);
                            match attribute_value_end(data, i, quote)? {
                                Ok(end) => {
                                    let value = Span {
                                        start: value,
                                        end: rel(end),
                                    };
                                    push!(Token::Attribute { name, value }, name_start);
                                    *attributes += 1;
                                    i = end + 1;
                                    spaced = false;
                                }
                                Err(resume) => {
                                    i = resume;
                                    more!(State::AttrValue { name, value, quote });
                                }
                            }
                        }
                        Some(_) if spaced => return Err((ErrorKind::InvalidName, i)),
                        Some(_) => return Err((ErrorKind::ExpectedTagEnd, i)),
                    }
                },
                State::TagSlash => match data.get(i) {
                    None => more!(st),
                    Some(b'>') => {
                        // `/|>` split: TagSlash remembers the `/`, so only the `>` is looked at
                        // when the next chunk arrives.
                        push!(Token::ElementEmpty, i - 1);
                        open.pop();
                        i += 1;
                        if open.is_empty() {
                            *state = State::Idle;
                            return Ok(Scanned::Message(i));
                        }
                        st = State::Content { text: rel(i) };
                    }
                    Some(_) => return Err((ErrorKind::ExpectedTagEnd, i)),
                },
                // The resume states of a cut attribute; each does its part, as the loop in
                // InTag does, and moves on.
                State::AttrName { name } => {
                    i = scan::skip(data, i, scan::NAME);
                    let name_start = abs(name);
                    if i - name_start > max_name {
                        return Err((ErrorKind::NameTooLong, name_start + max_name));
                    }
                    if i == data.len() {
                        more!(st);
                    }
                    let name = new_attribute_name(tokens, data, start, name_start, i)?;
                    st = State::AttrEq { name };
                }
                State::AttrEq { name } => {
                    i = scan::skip(data, i, scan::WS);
                    match data.get(i) {
                        None => more!(st),
                        Some(b'=') => {
                            i += 1;
                            st = State::AttrQuote { name };
                        }
                        Some(_) => return Err((ErrorKind::ExpectedEquals, i)),
                    }
                }
                State::AttrQuote { name } => {
                    i = scan::skip(data, i, scan::WS);
                    match data.get(i) {
                        None => more!(st),
                        Some(&quote) if quote == b'"' || quote == b'\'' => {
                            i += 1;
                            st = State::AttrValue {
                                name,
                                value: rel(i),
                                quote,
                            };
                        }
                        Some(_) => return Err((ErrorKind::ExpectedQuote, i)),
                    }
                }
                State::AttrValue { name, value, quote } => {
                    match attribute_value_end(data, i, quote)? {
                        Ok(end) => {
                            let span = Span {
                                start: value,
                                end: rel(end),
                            };
                            push!(Token::Attribute { name, value: span }, abs(name.start));
                            *attributes += 1;
                            i = end + 1;
                            st = State::InTag { spaced: false };
                        }
                        Err(resume) => {
                            i = resume;
                            more!(st);
                        }
                    }
                }
                State::EndName { name } => {
                    let name_start = abs(name);
                    if i == name_start {
                        match data.get(i) {
                            None => more!(st),
                            Some(&b) if scan::is(b, scan::NAME_START) => {}
                            Some(_) => return Err((ErrorKind::InvalidName, i)),
                        }
                    }
                    i = scan::skip(data, i, scan::NAME);
                    if i - name_start > max_name {
                        return Err((ErrorKind::NameTooLong, name_start + max_name));
                    }
                    if i == data.len() {
                        more!(st);
                    }
                    let span = Span {
                        start: name,
                        end: rel(i),
                    };
                    let open_name = open.last().copied().unwrap_or_default();
                    if data.get(abs(open_name.start)..abs(open_name.end)) != data.get(name_start..i)
                    {
                        return Err((ErrorKind::MismatchedCloseTag, name_start));
                    }
                    push!(Token::ElementClose { name: span }, name_start - 2);
                    open.pop();
                    st = State::EndTail;
                }
                State::EndTail => {
                    i = scan::skip(data, i, scan::WS);
                    match data.get(i) {
                        None => more!(st),
                        Some(b'>') => {
                            i += 1;
                            if open.is_empty() {
                                *state = State::Idle;
                                return Ok(Scanned::Message(i));
                            }
                            st = State::Content { text: rel(i) };
                        }
                        Some(_) => return Err((ErrorKind::ExpectedTagEnd, i)),
                    }
                }
                State::Content { text } => match scan::scan_chars::<{ scan::TEXT }>(data, i)? {
                    Stop::More(at) => {
                        i = at;
                        more!(st);
                    }
                    Stop::At(at) => match data.get(at) {
                        Some(b'<') => {
                            let text_start = abs(text);
                            if at > text_start {
                                let raw = Span {
                                    start: text,
                                    end: rel(at),
                                };
                                push!(Token::Text { raw }, text_start);
                            }
                            i = at + 1;
                            st = State::Lt { lt: rel(at) };
                        }
                        Some(b'&') => match check_reference(data, at)? {
                            Some(after) => i = after,
                            None => {
                                i = at;
                                more!(st);
                            }
                        },
                        _ => {
                            // A `>`: look back for `]]`. The bytes before it are still in the
                            // buffer, so a `]]|>` split across chunks needs no state:
                            //   chunk 1: a]]|
                            //   chunk 2:    |>b     the `>` sees `]]` behind it
                            // Only `]` of this run count: a reference or markup between them
                            // would have ended the run.
                            if at >= abs(text) + 2 && data.get(at - 2..at) == Some(b"]]") {
                                return Err((ErrorKind::CDataEndInText, at - 2));
                            }
                            i = at + 1;
                        }
                    },
                },
                State::Bang { lt } => {
                    let rest = data.get(i..).unwrap_or_default();
                    if rest.starts_with(b"--") {
                        i += 2;
                        st = State::Comment;
                    } else if rest.starts_with(b"[CDATA[") {
                        if open.is_empty() {
                            return Err((ErrorKind::JunkBetweenMessages, abs(lt)));
                        }
                        i += 7;
                        st = State::CData { text: rel(i) };
                    } else if rest.starts_with(b"DOCTYPE") {
                        return Err((ErrorKind::DoctypeNotAllowed, abs(lt)));
                    } else if [&b"--"[..], b"[CDATA[", b"DOCTYPE"]
                        .iter()
                        .any(|keyword| keyword.starts_with(rest))
                    {
                        // A keyword cut by the end of the bytes: at most 6 bytes get looked at
                        // again next time.
                        more!(st);
                    } else {
                        return Err((ErrorKind::InvalidMarkup, abs(lt)));
                    }
                }
                State::Comment => match scan::scan_chars::<{ scan::COMMENT }>(data, i)? {
                    Stop::More(at) => {
                        i = at;
                        more!(st);
                    }
                    // A `-`. The terminator may be split anywhere:
                    //   `...-|->`  or  `...--|>`
                    // so the scan stops at the first `-` and, short of the two bytes after it,
                    // resumes at that same `-` next time (two bytes rescanned at most).
                    Stop::At(dash) => match (data.get(dash + 1), data.get(dash + 2)) {
                        (None, _) | (Some(b'-'), None) => {
                            i = dash;
                            more!(st);
                        }
                        (Some(b'-'), Some(b'>')) => {
                            i = dash + 3;
                            st = after_markup(open, i, start);
                        }
                        (Some(b'-'), Some(_)) => {
                            return Err((ErrorKind::DoubleDashInComment, dash))
                        }
                        (Some(_), _) => i = dash + 1,
                    },
                },
                State::CData { text } => match scan::scan_chars::<{ scan::CDATA }>(data, i)? {
                    Stop::More(at) => {
                        i = at;
                        more!(st);
                    }
                    // A `>`: like text, look back for `]]`, so `]]|>` splits need no state.
                    Stop::At(at) => {
                        let text_start = abs(text);
                        if at >= text_start + 2 && data.get(at - 2..at) == Some(b"]]") {
                            let span = Span {
                                start: text,
                                end: rel(at - 2),
                            };
                            push!(Token::CData { text: span }, text_start - 9);
                            i = at + 1;
                            st = State::Content { text: rel(i) };
                        } else {
                            i = at + 1;
                        }
                    }
                },
                State::PiTarget { name } => {
                    let name_start = abs(name);
                    if i == name_start {
                        match data.get(i) {
                            None => more!(st),
                            Some(&b) if scan::is(b, scan::NAME_START) => {}
                            Some(_) => return Err((ErrorKind::InvalidName, i)),
                        }
                    }
                    i = scan::skip(data, i, scan::NAME);
                    if i - name_start > max_name {
                        return Err((ErrorKind::NameTooLong, name_start + max_name));
                    }
                    match data.get(i) {
                        None => more!(st),
                        Some(&b) if b == b'?' || scan::is(b, scan::WS) => {
                            let target = data.get(name_start..i).unwrap_or_default();
                            if !open.is_empty() && target.eq_ignore_ascii_case(b"xml") {
                                return Err((ErrorKind::ReservedPiTarget, name_start));
                            }
                            st = State::Pi;
                        }
                        Some(_) => return Err((ErrorKind::InvalidName, i)),
                    }
                }
                State::Pi => match scan::scan_chars::<{ scan::PI }>(data, i)? {
                    Stop::More(at) => {
                        i = at;
                        more!(st);
                    }
                    // A `?`; a `?|>` split resumes at the `?` (one byte rescanned).
                    Stop::At(question) => match data.get(question + 1) {
                        None => {
                            i = question;
                            more!(st);
                        }
                        Some(b'>') => {
                            i = question + 2;
                            st = after_markup(open, i, start);
                        }
                        Some(_) => i = question + 1,
                    },
                },
            }
        }
    }
}

/// Checks a complete attribute name `data[name_start..end]` against the element's earlier
/// attributes, without allocating: they are the Attribute tokens at the end of the list.
/// Returns its span (relative to the message start at `start`).
fn new_attribute_name(
    tokens: &[Token],
    data: &[u8],
    start: usize,
    name_start: usize,
    end: usize,
) -> Result<Span, scan::Fault> {
    let name_bytes = data.get(name_start..end).unwrap_or_default();
    for token in tokens.iter().rev() {
        let Token::Attribute { name: earlier, .. } = *token else {
            break;
        };
        let earlier_start = start + earlier.start as usize;
        let earlier_end = start + earlier.end as usize;
        if earlier_end - earlier_start == name_bytes.len()
            && data.get(earlier_start..earlier_end) == Some(name_bytes)
        {
            return Err((ErrorKind::DuplicateAttribute, name_start));
        }
    }
    Ok(Span {
        start: (name_start - start) as u32,
        end: (end - start) as u32,
    })
}

/// Scans an attribute value from `i` to its closing `quote`: `Ok(index of the quote)`, or
/// `Err(index to resume at)` when the bytes end first.
#[inline]
fn attribute_value_end(
    data: &[u8],
    mut i: usize,
    quote: u8,
) -> Result<Result<usize, usize>, scan::Fault> {
    loop {
        let stop = if quote == b'"' {
            scan::scan_chars::<{ scan::ATTR_DQ }>(data, i)?
        } else {
            scan::scan_chars::<{ scan::ATTR_SQ }>(data, i)?
        };
        match stop {
            Stop::More(at) => return Ok(Err(at)),
            Stop::At(at) => match data.get(at) {
                Some(b'<') => return Err((ErrorKind::LtInAttributeValue, at)),
                Some(b'&') => match check_reference(data, at)? {
                    Some(after) => i = after,
                    None => return Ok(Err(at)),
                },
                // Only the closing quote is left in the class's stop set.
                _ => return Ok(Ok(at)),
            },
        }
    }
}

/// The state after a comment or processing instruction ending before `i`.
fn after_markup(open: &[Span], i: usize, start: usize) -> State {
    if open.is_empty() {
        State::Idle
    } else {
        State::Content {
            text: (i - start) as u32,
        }
    }
}

/// Validates the reference whose `&` is at `amp`: the index after it, or `None` if the bytes
/// end first. A reference cut by a chunk boundary is looked at again from its `&` next time,
/// at most [`scan::MAX_REFERENCE_BYTES`] bytes.
fn check_reference(data: &[u8], amp: usize) -> Result<Option<usize>, scan::Fault> {
    match scan::parse_reference(data.get(amp..).unwrap_or_default()) {
        Reference::Char(_, len) => Ok(Some(amp + len)),
        Reference::Incomplete => Ok(None),
        Reference::Bad(kind, at) => Err((kind, amp + at)),
    }
}
