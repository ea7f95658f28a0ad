//! sigma's messages: typed, encoded with [`Writer`], decoded from a [`Frame`].
//!
//! docs/protocol.md is the specification: the conversations, every element and attribute, the
//! number rules and the error codes. In short:
//!
//! * [`Message::encode`] appends one message to a `Vec<u8>`; nothing is allocated once the
//!   vector has room.
//! * [`decode`] turns a frame into a [`Message`] that borrows its strings from the frame.
//!   Worker messages decode without allocating; only the status document has `Vec`s.
//! * A frame that is well-formed XML but not a valid message gives a [`DecodeError`]: its
//!   [`ErrorCode`], what is wrong ([`Problem`]) and the element or attribute concerned.
//! * Strings are [`XmlStr`]: raw from a frame, plain when a program built them; messages compare
//!   their resolved text, so `decode(encode(m)) == m`.
//!
//! ```text
//! <assign lease="17" lo="1000" hi="2000" deadline-ms="45000"/>
//!         --------------------------------------------------  attributes, any order
//! ```

mod base64;
mod cursor;
mod error;
mod messages;
mod values;

#[cfg(feature = "arbitrary")]
mod fuzzing;

pub use error::{DecodeError, Name, Problem};
pub use messages::{
    Ack, Assign, Auth, Challenge, ComputeStatus, Control, ErrorMessage, FlaggedCompute,
    FoundPerfect, Hello, Job, JobResult, Kill, LeaseStatus, Program, Progress, Run, Shutdown,
    Status, Stopping, Wait, Welcome, WorkResult, VERSION_MISMATCH,
};
pub use values::{
    Algorithm, Base64, ErrorCode, Hex, JobStatus, Language, ListFull, Output, Payload, PerfectList,
    Schedule,
};

use crate::{Frame, Writer};
use cursor::Cursor;

/// The protocol version this crate speaks, carried in `<hello version="2">`. Version 2 added
/// `<heartbeat/>` on the control connection, which manage requires (a version-1 compute would
/// be cut off as silent).
pub const PROTOCOL_VERSION: u64 = 2;

/// One message of sigma's protocol: one variant per element.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Message<'a> {
    /// `<hello>`: compute → manage, first on the work connection.
    Hello(Hello<'a>),
    /// `<welcome>`: manage → compute, the answer to hello.
    Welcome(Welcome<'a>),
    /// `<auth>`: the answer to a nonce, when manage requires a token.
    Auth(Auth<'a>),
    /// `<request/>`: compute → manage, asking for work.
    Request,
    /// `<assign>`: manage → compute, a range to scan.
    Assign(Assign),
    /// `<wait>`: manage → compute, no work now.
    Wait(Wait),
    /// `<progress>`: compute → manage, how far a lease got.
    Progress(Progress),
    /// `<result>`: compute → manage, what a lease found.
    Result(WorkResult),
    /// `<ack>`: manage → compute, the result is recorded.
    Ack(Ack),
    /// `<bye/>`: either side, closing cleanly.
    Bye,
    /// `<control>`: compute → manage, first on the control connection.
    Control(Control<'a>),
    /// `<shutdown>`: manage → compute, on the control connection.
    Shutdown(Shutdown<'a>),
    /// `<heartbeat/>`: either side of a control connection, every few seconds, no reply: the
    /// peer is alive (see [`crate::liveness`]).
    Heartbeat,
    /// `<job>`: manage → compute, a program to run.
    Job(Job<'a>),
    /// `<job-result>`: compute → manage → report, how a program run ended.
    JobResult(JobResult<'a>),
    /// `<status-request/>`: report → manage.
    StatusRequest,
    /// `<status>`: manage → report, the state of the search.
    Status(Status<'a>),
    /// `<kill>`: report → manage, stop everything.
    Kill(Kill<'a>),
    /// `<challenge-request/>`: report → manage, asking for a nonce to prove a token with
    /// before it sends a request (so a `<run>`'s source is sent once).
    ChallengeRequest,
    /// `<challenge>`: manage → report, a nonce to answer.
    Challenge(Challenge<'a>),
    /// `<stopping>`: manage → report, the answer to kill.
    Stopping(Stopping),
    /// `<run>`: report → manage, a program to run.
    Run(Run<'a>),
    /// `<error>`: any direction.
    Error(ErrorMessage<'a>),
}

impl Message<'_> {
    /// The element name.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome(_) => "welcome",
            Message::Auth(_) => "auth",
            Message::Request => "request",
            Message::Assign(_) => "assign",
            Message::Wait(_) => "wait",
            Message::Progress(_) => "progress",
            Message::Result(_) => "result",
            Message::Ack(_) => "ack",
            Message::Bye => "bye",
            Message::Control(_) => "control",
            Message::Shutdown(_) => "shutdown",
            Message::Heartbeat => "heartbeat",
            Message::Job(_) => "job",
            Message::JobResult(_) => "job-result",
            Message::StatusRequest => "status-request",
            Message::Status(_) => "status",
            Message::Kill(_) => "kill",
            Message::ChallengeRequest => "challenge-request",
            Message::Challenge(_) => "challenge",
            Message::Stopping(_) => "stopping",
            Message::Run(_) => "run",
            Message::Error(_) => "error",
        }
    }

    /// Appends the message to `out`: one element, no whitespace around it.
    ///
    /// It writes what it is given; [`Message::validate`] says whether the receiver will accept
    /// it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let w = &mut Writer::new(out);
        match self {
            Message::Hello(m) => m.encode(w),
            Message::Welcome(m) => m.encode(w),
            Message::Auth(m) => m.encode(w),
            Message::Request => {
                w.open("request").end_empty();
            }
            Message::Assign(m) => m.encode(w),
            Message::Wait(m) => m.encode(w),
            Message::Progress(m) => m.encode(w),
            Message::Result(m) => m.encode(w),
            Message::Ack(m) => m.encode(w),
            Message::Bye => {
                w.open("bye").end_empty();
            }
            Message::Control(m) => m.encode(w),
            Message::Shutdown(m) => m.encode(w),
            Message::Heartbeat => {
                w.open("heartbeat").end_empty();
            }
            Message::Job(m) => m.encode(w),
            Message::JobResult(m) => m.encode(w),
            Message::StatusRequest => {
                w.open("status-request").end_empty();
            }
            Message::Status(m) => m.encode(w),
            Message::Kill(m) => m.encode(w),
            Message::ChallengeRequest => {
                w.open("challenge-request").end_empty();
            }
            Message::Challenge(m) => m.encode(w),
            Message::Stopping(m) => m.encode(w),
            Message::Run(m) => m.encode(w),
            Message::Error(m) => m.encode(w),
        }
    }

    /// `Ok` when the receiver will decode this message back to an equal one: ranges in order,
    /// perfect numbers increasing and inside their range, plain text made only of characters
    /// XML can carry. The error is the one [`decode`] would give (hex and base64 are valid by
    /// construction).
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Message::Hello(m) => m.check(),
            Message::Assign(m) => m.check(),
            Message::Result(m) => m.check(),
            Message::Shutdown(m) => m.check(),
            Message::Job(m) => m.check(),
            Message::JobResult(m) => m.check(),
            Message::Status(m) => m.check(),
            Message::Run(m) => m.check(),
            Message::Error(m) => m.check(),
            Message::Welcome(_)
            | Message::Auth(_)
            | Message::Request
            | Message::Wait(_)
            | Message::Progress(_)
            | Message::Ack(_)
            | Message::Bye
            | Message::Control(_)
            | Message::Heartbeat
            | Message::StatusRequest
            | Message::Kill(_)
            | Message::ChallengeRequest
            | Message::Challenge(_)
            | Message::Stopping(_) => Ok(()),
        }
    }
}

/// Decodes one message. Strings borrow from the frame. Unknown elements and attributes, missing
/// or repeated ones, malformed values and text where none belongs are errors; a hello of
/// another protocol version is not (see [`Hello::check_version`]).
pub fn decode<'a>(frame: &Frame<'a>) -> Result<Message<'a>, DecodeError> {
    let mut cur = Cursor::new(frame);
    let tag = cur.root()?;
    let message = match tag.name {
        "hello" => Message::Hello(Hello::decode(&mut cur, &tag)?),
        "welcome" => Message::Welcome(Welcome::decode(&mut cur, &tag)?),
        "auth" => Message::Auth(Auth::decode(&mut cur, &tag)?),
        "request" => {
            cur.attrs(&tag, &[], true)?;
            cur.no_content(&tag, "request")?;
            Message::Request
        }
        "assign" => Message::Assign(Assign::decode(&mut cur, &tag)?),
        "wait" => Message::Wait(Wait::decode(&mut cur, &tag)?),
        "progress" => Message::Progress(Progress::decode(&mut cur, &tag)?),
        "result" => Message::Result(WorkResult::decode(&mut cur, &tag)?),
        "ack" => Message::Ack(Ack::decode(&mut cur, &tag)?),
        "bye" => {
            cur.attrs(&tag, &[], true)?;
            cur.no_content(&tag, "bye")?;
            Message::Bye
        }
        "control" => Message::Control(Control::decode(&mut cur, &tag)?),
        "shutdown" => Message::Shutdown(Shutdown::decode(&mut cur, &tag)?),
        "heartbeat" => {
            cur.attrs(&tag, &[], true)?;
            cur.no_content(&tag, "heartbeat")?;
            Message::Heartbeat
        }
        "job" => Message::Job(Job::decode(&mut cur, &tag)?),
        "job-result" => Message::JobResult(JobResult::decode(&mut cur, &tag)?),
        "status-request" => {
            cur.attrs(&tag, &[], true)?;
            cur.no_content(&tag, "status-request")?;
            Message::StatusRequest
        }
        "status" => Message::Status(Status::decode(&mut cur, &tag)?),
        "kill" => Message::Kill(Kill::decode(&mut cur, &tag)?),
        "challenge-request" => {
            cur.attrs(&tag, &[], true)?;
            cur.no_content(&tag, "challenge-request")?;
            Message::ChallengeRequest
        }
        "challenge" => Message::Challenge(Challenge::decode(&mut cur, &tag)?),
        "stopping" => Message::Stopping(Stopping::decode(&mut cur, &tag)?),
        "run" => Message::Run(Run::decode(&mut cur, &tag)?),
        "error" => Message::Error(ErrorMessage::decode(&mut cur, &tag)?),
        _ => return Err(DecodeError::at(Problem::UnknownElement, tag.name_span)),
    };
    cur.finish()?;
    Ok(message)
}
