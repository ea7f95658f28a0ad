//! The message structs, each with its encoding, its decoding and its checks.
//!
//! Decoding reads attributes by name (any order), then children, then runs the same `check`
//! that [`Message::validate`](super::Message::validate) runs, so a message a program built is
//! valid exactly when the receiver will decode it.
//!
//! One concern past 800 lines: one struct per message of protocol.md, in the order of that
//! document, each with its three methods; a reader looks up a message here as there.

use super::cursor::{Attrs, Cursor, Tag};
use super::error::{DecodeError, Problem};
use super::values::{
    Algorithm, ErrorCode, Hex, JobStatus, Language, Output, Payload, PerfectList, Schedule,
};
use super::PROTOCOL_VERSION;
use crate::scan;
use crate::{Writer, XmlStr};

type Decoded<T> = Result<T, DecodeError>;

fn fail<T>(problem: Problem, name: &'static str) -> Decoded<T> {
    Err(DecodeError::known(problem, name))
}

/// Plain text a program built must hold only characters XML can carry. Raw text came from a
/// reader, which validated it.
fn check_text(text: XmlStr<'_>, name: &'static str) -> Decoded<()> {
    match text {
        XmlStr::Plain(s) if !s.chars().all(scan::is_xml_char) => fail(Problem::BadCharacter, name),
        _ => Ok(()),
    }
}

/// Writes ` name="value"` when there is a value.
fn opt_attr_u64(w: &mut Writer<'_>, name: &str, value: Option<u64>) {
    if let Some(value) = value {
        w.attr_u64(name, value);
    }
}

fn opt_attr_xml(w: &mut Writer<'_>, name: &str, value: Option<XmlStr<'_>>) {
    if let Some(value) = value {
        w.attr_xml(name, value);
    }
}

fn opt_attr_hex(w: &mut Writer<'_>, name: &str, value: Option<Hex<'_>>) {
    if let Some(value) = value {
        w.attr(name, value.as_str());
    }
}

/// Stores a child that may appear at most once.
fn once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Decoded<()> {
    if slot.is_some() {
        return fail(Problem::DuplicateChild, name);
    }
    *slot = Some(value);
    Ok(())
}

/// The first message of a compute's work connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Hello<'a> {
    /// The protocol version the compute speaks ([`PROTOCOL_VERSION`]).
    pub version: u64,
    /// The compute's host name.
    pub host: XmlStr<'a>,
    /// The compute's process id.
    pub pid: u64,
    /// Threads it scans with.
    pub threads: u64,
    /// How it tests numbers.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzzing::algorithm))]
    pub algorithm: Algorithm,
    /// Kernel operations per second its timing loop measured.
    pub ops_per_sec: u64,
}

/// The message manage sends when a hello's version is not [`PROTOCOL_VERSION`]. Spelled out (a
/// const cannot format a number into a string); a test in tests/protocol.rs pins the two.
pub const VERSION_MISMATCH: &str = "unsupported protocol version: this manage speaks version 2";

impl<'a> Hello<'a> {
    const NAMES: [&'static str; 6] = [
        "version",
        "host",
        "pid",
        "threads",
        "algorithm",
        "ops-per-sec",
    ];

    /// `Ok` when the hello's version is [`PROTOCOL_VERSION`], else the `<error code="version">`
    /// to send before closing the connection.
    pub fn check_version(&self) -> Result<(), ErrorMessage<'static>> {
        if self.version == PROTOCOL_VERSION {
            return Ok(());
        }
        Err(ErrorMessage {
            code: ErrorCode::Version,
            message: XmlStr::Plain(VERSION_MISMATCH),
            about: Some(XmlStr::Plain("version")),
        })
    }

    /// A hello of this version is decoded strictly. A hello of another version only needs a
    /// valid `version`: the rest is read where it can be (unknown attributes ignored, missing
    /// or malformed ones left at zero, empty, `sieve`), so that manage can answer it with
    /// [`Hello::check_version`] rather than with a bad-message error.
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, false)?;
        let version = a.u64("version")?;
        if version != PROTOCOL_VERSION {
            // Its content, too, is none of our business.
            cur.skip_rest();
            return Ok(Hello {
                version,
                host: a.xml("host").unwrap_or(XmlStr::Plain("")),
                pid: a.u64("pid").unwrap_or(0),
                threads: a.u64("threads").unwrap_or(0),
                algorithm: a.keyword("algorithm").unwrap_or(Algorithm::Sieve),
                ops_per_sec: a.u64("ops-per-sec").unwrap_or(0),
            });
        }
        a.reject_unknown()?;
        cur.no_content(tag, "hello")?;
        Ok(Hello {
            version,
            host: a.xml("host")?,
            pid: a.u64("pid")?,
            threads: a.u64("threads")?,
            algorithm: a.keyword("algorithm")?,
            ops_per_sec: a.u64("ops-per-sec")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("hello")
            .attr_u64("version", self.version)
            .attr_xml("host", self.host)
            .attr_u64("pid", self.pid)
            .attr_u64("threads", self.threads)
            .attr("algorithm", self.algorithm.as_str())
            .attr_u64("ops-per-sec", self.ops_per_sec)
            .end_empty();
    }

    pub(super) fn check(&self) -> Decoded<()> {
        check_text(self.host, "host")
    }
}

/// manage's answer to a hello: who the compute is, and how long a range should take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Welcome<'a> {
    /// The id manage gave this compute.
    pub compute_id: u64,
    /// How long manage wants one assignment to take, in milliseconds.
    pub target_ms: u64,
    /// The token the compute's control connection must present.
    pub session: Hex<'a>,
    /// A fresh random challenge; the answer is `<auth>`, when manage requires a token.
    pub nonce: Hex<'a>,
}

impl<'a> Welcome<'a> {
    const NAMES: [&'static str; 4] = ["compute-id", "target-ms", "session", "nonce"];

    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        cur.no_content(tag, "welcome")?;
        Ok(Welcome {
            compute_id: a.u64("compute-id")?,
            target_ms: a.u64("target-ms")?,
            session: a.hex("session")?,
            nonce: a.hex("nonce")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("welcome")
            .attr_u64("compute-id", self.compute_id)
            .attr_u64("target-ms", self.target_ms)
            .attr("session", self.session.as_str())
            .attr("nonce", self.nonce.as_str())
            .end_empty();
    }
}

/// The answer to the latest nonce manage sent on this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Auth<'a> {
    /// HMAC-SHA-256 of the nonce's bytes, keyed with the shared token.
    pub mac: Hex<'a>,
}

impl<'a> Auth<'a> {
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["mac"], true)?;
        cur.no_content(tag, "auth")?;
        Ok(Auth { mac: a.hex("mac")? })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("auth").attr("mac", self.mac.as_str()).end_empty();
    }
}

/// A range handed to a compute: `[lo, hi)`, leased for `deadline_ms` from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Assign {
    /// The lease's id.
    pub lease: u64,
    /// First number, at least 1.
    pub lo: u64,
    /// One past the last number, above `lo`.
    pub hi: u64,
    /// How long the lease lasts, from when the compute receives it.
    pub deadline_ms: u64,
}

impl Assign {
    const NAMES: [&'static str; 4] = ["lease", "lo", "hi", "deadline-ms"];

    pub(super) fn decode<'a>(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        cur.no_content(tag, "assign")?;
        let assign = Assign {
            lease: a.u64("lease")?,
            lo: a.u64("lo")?,
            hi: a.u64("hi")?,
            deadline_ms: a.u64("deadline-ms")?,
        };
        assign.check()?;
        Ok(assign)
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("assign")
            .attr_u64("lease", self.lease)
            .attr_u64("lo", self.lo)
            .attr_u64("hi", self.hi)
            .attr_u64("deadline-ms", self.deadline_ms)
            .end_empty();
    }

    pub(super) fn check(&self) -> Decoded<()> {
        if self.lo == 0 {
            return fail(Problem::ZeroStart, "lo");
        }
        if self.hi <= self.lo {
            return fail(Problem::EmptyRange, "hi");
        }
        Ok(())
    }
}

/// Nothing to hand out now: ask again after `ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Wait {
    /// How long to wait before the next request.
    pub ms: u64,
}

impl Wait {
    pub(super) fn decode<'a>(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["ms"], true)?;
        cur.no_content(tag, "wait")?;
        Ok(Wait { ms: a.u64("ms")? })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("wait").attr_u64("ms", self.ms).end_empty();
    }
}

/// How far a compute got in a lease: every number in `[lo, done)` is tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Progress {
    /// The lease.
    pub lease: u64,
    /// End of the tested prefix.
    pub done: u64,
}

impl Progress {
    pub(super) fn decode<'a>(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["lease", "done"], true)?;
        cur.no_content(tag, "progress")?;
        Ok(Progress {
            lease: a.u64("lease")?,
            done: a.u64("done")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("progress")
            .attr_u64("lease", self.lease)
            .attr_u64("done", self.done)
            .end_empty();
    }
}

/// What a compute found in `[lo, hi)`, a prefix of its lease (all of it unless it was stopped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct WorkResult {
    /// The lease.
    pub lease: u64,
    /// The lease's first number, at least 1.
    pub lo: u64,
    /// End of the scanned prefix, not below `lo`.
    pub hi: u64,
    /// How long the scan took.
    pub elapsed_ms: u64,
    /// Wrapping sum of s(n) over `[lo, hi)`.
    pub checksum: u64,
    /// The perfect numbers in `[lo, hi)`, increasing.
    pub perfect: PerfectList,
}

impl WorkResult {
    const NAMES: [&'static str; 5] = ["lease", "lo", "hi", "elapsed-ms", "checksum"];

    pub(super) fn decode<'a>(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        let mut perfect = PerfectList::new();
        while let Some(child) = cur.next_child(tag, "result")? {
            if child.name != "perfect" {
                return Err(DecodeError::at(Problem::UnknownElement, child.name_span));
            }
            let n = cur.attrs(&child, &["n"], true)?.u64("n")?;
            cur.no_content(&child, "perfect")?;
            if perfect.push(n).is_err() {
                return fail(Problem::TooMany, "perfect");
            }
        }
        let result = WorkResult {
            lease: a.u64("lease")?,
            lo: a.u64("lo")?,
            hi: a.u64("hi")?,
            elapsed_ms: a.u64("elapsed-ms")?,
            checksum: a.u64("checksum")?,
            perfect,
        };
        result.check()?;
        Ok(result)
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("result")
            .attr_u64("lease", self.lease)
            .attr_u64("lo", self.lo)
            .attr_u64("hi", self.hi)
            .attr_u64("elapsed-ms", self.elapsed_ms)
            .attr_u64("checksum", self.checksum);
        if self.perfect.is_empty() {
            w.end_empty();
            return;
        }
        w.end_open();
        for n in &self.perfect {
            w.open("perfect").attr_u64("n", n).end_empty();
        }
        w.close("result");
    }

    pub(super) fn check(&self) -> Decoded<()> {
        if self.lo == 0 {
            return fail(Problem::ZeroStart, "lo");
        }
        if self.hi < self.lo {
            return fail(Problem::ReversedRange, "hi");
        }
        let mut previous = None;
        for n in &self.perfect {
            if !(self.lo..self.hi).contains(&n) {
                return fail(Problem::OutsideRange, "perfect");
            }
            if previous.is_some_and(|p| p >= n) {
                return fail(Problem::NotIncreasing, "perfect");
            }
            previous = Some(n);
        }
        Ok(())
    }
}

/// manage recorded the result of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Ack {
    /// The lease.
    pub lease: u64,
}

impl Ack {
    pub(super) fn decode<'a>(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["lease"], true)?;
        cur.no_content(tag, "ack")?;
        Ok(Ack {
            lease: a.u64("lease")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("ack").attr_u64("lease", self.lease).end_empty();
    }
}

/// The first message of a compute's control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Control<'a> {
    /// The id from the compute's welcome.
    pub compute_id: u64,
    /// The session from the compute's welcome.
    pub session: Hex<'a>,
    /// The compute runs jobs (`accept-jobs="1"`; absent means it does not).
    pub accept_jobs: bool,
}

impl<'a> Control<'a> {
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["compute-id", "session", "accept-jobs"], true)?;
        cur.no_content(tag, "control")?;
        Ok(Control {
            compute_id: a.u64("compute-id")?,
            session: a.hex("session")?,
            accept_jobs: a.flag("accept-jobs")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("control")
            .attr_u64("compute-id", self.compute_id)
            .attr("session", self.session.as_str());
        if self.accept_jobs {
            w.attr("accept-jobs", "1");
        }
        w.end_empty();
    }
}

/// manage tells a compute to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Shutdown<'a> {
    /// Why, for people.
    pub reason: XmlStr<'a>,
}

impl<'a> Shutdown<'a> {
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["reason"], true)?;
        cur.no_content(tag, "shutdown")?;
        Ok(Shutdown {
            reason: a.xml("reason")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("shutdown")
            .attr_xml("reason", self.reason)
            .end_empty();
    }

    pub(super) fn check(&self) -> Decoded<()> {
        check_text(self.reason, "reason")
    }
}

/// A program to compile (when its language needs it) and run, with its limits: the part a
/// `<run>` and a `<job>` share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Program<'a> {
    /// Its language.
    pub language: Language,
    /// Its file name, such as `hello.c`.
    pub name: XmlStr<'a>,
    /// Most CPU or wall-clock time it may use.
    pub time_limit_ms: u64,
    /// Most memory it may use, in MiB.
    pub memory_limit_mb: u64,
    /// Its source code: `<source>`.
    pub source: Payload<'a>,
    /// Its standard input: `<stdin>`; absent means empty.
    pub stdin: Option<Payload<'a>>,
}

impl<'a> Program<'a> {
    fn decode<const N: usize>(
        cur: &mut Cursor<'_, 'a>,
        tag: &Tag<'a>,
        element: &'static str,
        a: &Attrs<'a, N>,
    ) -> Decoded<Self> {
        let mut source = None;
        let mut stdin = None;
        while let Some(child) = cur.next_child(tag, element)? {
            match child.name {
                "source" => once(
                    &mut source,
                    decode_payload(cur, &child, "source")?,
                    "source",
                )?,
                "stdin" => once(&mut stdin, decode_payload(cur, &child, "stdin")?, "stdin")?,
                _ => return Err(DecodeError::at(Problem::UnknownElement, child.name_span)),
            }
        }
        Ok(Program {
            language: a.keyword("language")?,
            name: a.xml("name")?,
            time_limit_ms: a.u64("time-limit-ms")?,
            memory_limit_mb: a.u64("memory-limit-mb")?,
            source: source.ok_or(DecodeError::known(Problem::MissingChild, "source"))?,
            stdin,
        })
    }

    /// Writes the attributes.
    fn encode_attrs(&self, w: &mut Writer<'_>) {
        w.attr("language", self.language.as_str())
            .attr_xml("name", self.name)
            .attr_u64("time-limit-ms", self.time_limit_ms)
            .attr_u64("memory-limit-mb", self.memory_limit_mb);
    }

    /// Writes the children.
    fn encode_children(&self, w: &mut Writer<'_>) {
        encode_payload(w, "source", &self.source);
        if let Some(stdin) = &self.stdin {
            encode_payload(w, "stdin", stdin);
        }
    }

    fn check(&self) -> Decoded<()> {
        check_text(self.name, "name")?;
        check_payload(&self.source, "source")?;
        match &self.stdin {
            Some(stdin) => check_payload(stdin, "stdin"),
            None => Ok(()),
        }
    }
}

fn decode_payload<'a>(
    cur: &mut Cursor<'_, 'a>,
    tag: &Tag<'a>,
    name: &'static str,
) -> Decoded<Payload<'a>> {
    let a = cur.attrs(tag, &["encoding"], true)?;
    match a.get("encoding") {
        None => Ok(Payload::Text(cur.xml_content(tag, name)?)),
        Some("base64") => Ok(Payload::Base64(cur.base64_content(tag, name)?)),
        Some(_) => fail(Problem::BadKeyword, "encoding"),
    }
}

fn encode_payload(w: &mut Writer<'_>, name: &str, payload: &Payload<'_>) {
    w.open(name);
    match payload {
        Payload::Text(text) => {
            w.end_open().text_xml(*text);
        }
        Payload::Base64(data) => {
            w.attr("encoding", "base64").end_open().text(data.as_str());
        }
    }
    w.close(name);
}

fn check_payload(payload: &Payload<'_>, name: &'static str) -> Decoded<()> {
    match payload {
        Payload::Text(text) => check_text(*text, name),
        Payload::Base64(_) => Ok(()),
    }
}

/// manage asks a compute to run a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Job<'a> {
    /// The job's id, chosen by manage; the job-result repeats it.
    pub id: u64,
    /// What to run.
    pub program: Program<'a>,
}

impl<'a> Job<'a> {
    const NAMES: [&'static str; 5] = ["id", "language", "name", "time-limit-ms", "memory-limit-mb"];

    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        let program = Program::decode(cur, tag, "job", &a)?;
        Ok(Job {
            id: a.u64("id")?,
            program,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("job").attr_u64("id", self.id);
        self.program.encode_attrs(w);
        w.end_open();
        self.program.encode_children(w);
        w.close("job");
    }

    pub(super) fn check(&self) -> Decoded<()> {
        self.program.check()
    }
}

/// report asks manage to run a program on a compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Run<'a> {
    /// Which compute runs it.
    pub schedule: Schedule,
    /// The answer to manage's challenge, when manage requires a token.
    pub mac: Option<Hex<'a>>,
    /// What to run.
    pub program: Program<'a>,
}

impl<'a> Run<'a> {
    const NAMES: [&'static str; 6] = [
        "language",
        "name",
        "time-limit-ms",
        "memory-limit-mb",
        "schedule",
        "mac",
    ];

    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        let program = Program::decode(cur, tag, "run", &a)?;
        Ok(Run {
            schedule: a.keyword("schedule")?,
            mac: a.opt_hex("mac")?,
            program,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("run");
        self.program.encode_attrs(w);
        w.attr("schedule", self.schedule.as_str());
        opt_attr_hex(w, "mac", self.mac);
        w.end_open();
        self.program.encode_children(w);
        w.close("run");
    }

    pub(super) fn check(&self) -> Decoded<()> {
        self.program.check()
    }
}

/// How a program run ended, with what it printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct JobResult<'a> {
    /// The job's id.
    pub id: u64,
    /// How it ended.
    pub status: JobStatus,
    /// The exit code, when the program exited.
    pub exit_code: Option<u64>,
    /// The signal that ended it, when one did.
    pub signal: Option<u64>,
    /// CPU time used (user and system).
    pub cpu_ms: u64,
    /// Wall-clock time from start to end.
    pub wall_ms: u64,
    /// Peak resident memory, in KiB.
    pub peak_kb: u64,
    /// The compute that ran it; absent when none did.
    pub compute_id: Option<u64>,
    /// That compute's host.
    pub host: Option<XmlStr<'a>>,
    /// A word for people on a rejected or internal-error job.
    pub message: Option<XmlStr<'a>>,
    /// What the program wrote to its standard output: `<stdout>`.
    pub stdout: Output<'a>,
    /// What the program wrote to its standard error: `<stderr>`.
    pub stderr: Output<'a>,
    /// What the compiler wrote: `<compiler-output>`.
    pub compiler_output: Output<'a>,
}

impl<'a> JobResult<'a> {
    const NAMES: [&'static str; 10] = [
        "id",
        "status",
        "exit-code",
        "signal",
        "cpu-ms",
        "wall-ms",
        "peak-kb",
        "compute-id",
        "host",
        "message",
    ];

    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        let (mut stdout, mut stderr, mut compiler_output) = (None, None, None);
        while let Some(child) = cur.next_child(tag, "job-result")? {
            let (slot, name) = match child.name {
                "stdout" => (&mut stdout, "stdout"),
                "stderr" => (&mut stderr, "stderr"),
                "compiler-output" => (&mut compiler_output, "compiler-output"),
                _ => return Err(DecodeError::at(Problem::UnknownElement, child.name_span)),
            };
            let truncated = cur.attrs(&child, &["truncated"], true)?.flag("truncated")?;
            let data = cur.base64_content(&child, name)?;
            once(slot, Output { data, truncated }, name)?;
        }
        Ok(JobResult {
            id: a.u64("id")?,
            status: a.keyword("status")?,
            exit_code: a.opt_u64("exit-code")?,
            signal: a.opt_u64("signal")?,
            cpu_ms: a.u64("cpu-ms")?,
            wall_ms: a.u64("wall-ms")?,
            peak_kb: a.u64("peak-kb")?,
            compute_id: a.opt_u64("compute-id")?,
            host: a.opt_xml("host"),
            message: a.opt_xml("message"),
            stdout: stdout.unwrap_or_default(),
            stderr: stderr.unwrap_or_default(),
            compiler_output: compiler_output.unwrap_or_default(),
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("job-result")
            .attr_u64("id", self.id)
            .attr("status", self.status.as_str());
        opt_attr_u64(w, "exit-code", self.exit_code);
        opt_attr_u64(w, "signal", self.signal);
        w.attr_u64("cpu-ms", self.cpu_ms)
            .attr_u64("wall-ms", self.wall_ms)
            .attr_u64("peak-kb", self.peak_kb);
        opt_attr_u64(w, "compute-id", self.compute_id);
        opt_attr_xml(w, "host", self.host);
        opt_attr_xml(w, "message", self.message);
        let outputs = [
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
            ("compiler-output", &self.compiler_output),
        ];
        if outputs.iter().all(|(_, output)| output.is_empty()) {
            w.end_empty();
            return;
        }
        w.end_open();
        for (name, output) in outputs {
            if output.is_empty() {
                continue;
            }
            w.open(name);
            if output.truncated {
                w.attr("truncated", "1");
            }
            if output.data.is_empty() {
                w.end_empty();
            } else {
                w.end_open().text(output.data.as_str()).close(name);
            }
        }
        w.close("job-result");
    }

    pub(super) fn check(&self) -> Decoded<()> {
        if let Some(host) = self.host {
            check_text(host, "host")?;
        }
        if let Some(message) = self.message {
            check_text(message, "message")?;
        }
        Ok(())
    }
}

/// A perfect number in the status document, with who found it and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct FoundPerfect<'a> {
    /// The number.
    pub n: u64,
    /// The host of the compute that found it.
    pub host: XmlStr<'a>,
    /// The compute's id.
    pub compute_id: u64,
    /// When manage recorded it, in Unix milliseconds.
    pub found_ms: u64,
}

/// The lease a compute holds, in the status document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct LeaseStatus {
    /// First number of the lease.
    pub lo: u64,
    /// One past its last number.
    pub hi: u64,
    /// End of the prefix the compute reported tested, in `[lo, hi]`.
    pub done: u64,
}

/// A connected compute, in the status document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ComputeStatus<'a> {
    /// Its id.
    pub id: u64,
    /// Its host name, from its hello.
    pub host: XmlStr<'a>,
    /// The address its work connection comes from, such as `10.0.0.7:51234`.
    pub address: XmlStr<'a>,
    /// Its process id.
    pub pid: u64,
    /// Its threads.
    pub threads: u64,
    /// Its algorithm.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = super::fuzzing::algorithm))]
    pub algorithm: Algorithm,
    /// Numbers per second it tested, as manage measures it.
    pub rate: u64,
    /// The lease it holds, if any (the attributes `lo`, `hi`, `done`).
    pub lease: Option<LeaseStatus>,
    /// Numbers it tested since it connected.
    pub tested: u64,
    /// When it connected, in Unix milliseconds.
    pub since_ms: u64,
}

/// The state of the search: report's `--xml` prints this document.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Status<'a> {
    /// Double-checks that agreed with the first computation.
    pub checks_passed: u64,
    /// Double-checks that disagreed (a third computation decides).
    pub mismatches: u64,
    /// Computes flagged for false claims or lost double-checks.
    pub flagged: Vec<FlaggedCompute<'a>>,
    /// How many numbers have been tested.
    pub tested: u64,
    /// The smallest number not yet tested: all of `[start, frontier)` is.
    pub frontier: u64,
    /// First number of the search.
    pub start: u64,
    /// Last number of the search (inclusive).
    pub until: u64,
    /// Numbers tested per second, over all computes.
    pub rate: u64,
    /// Every number of `[start, until]` is tested.
    pub done: bool,
    /// When manage made this document, in Unix milliseconds.
    pub now_ms: u64,
    /// The last number the progress and ETA count to: `until`, or with no `--until` the next
    /// power of ten above the frontier. Absent from older managers.
    pub eta_until: Option<u64>,
    /// Share of `[start, eta_until]` done, in parts per million (at most 1,000,000).
    pub done_ppm: Option<u64>,
    /// Milliseconds until every number up to `eta_until` is done: the cost model's operations
    /// left over the computes' measured operations per second. Absent without a compute.
    pub eta_ms: Option<u64>,
    /// The perfect numbers found, increasing.
    pub perfect: Vec<FoundPerfect<'a>>,
    /// The computes connected.
    pub computes: Vec<ComputeStatus<'a>>,
}

/// A compute (by host and pid) that claimed a false perfect number or lost a double-check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct FlaggedCompute<'a> {
    /// Its host.
    pub host: XmlStr<'a>,
    /// Its process id.
    pub pid: u64,
    /// How many offences.
    pub offences: u64,
    /// It gets no more work.
    pub refused: bool,
    /// The latest offence, for people.
    pub reason: XmlStr<'a>,
}

impl<'a> Status<'a> {
    const NAMES: [&'static str; 12] = [
        "tested",
        "frontier",
        "start",
        "until",
        "rate",
        "done",
        "now-ms",
        "checks-passed",
        "mismatches",
        "eta-until",
        "done-ppm",
        "eta-ms",
    ];
    const FLAGGED: [&'static str; 5] = ["host", "pid", "offences", "refused", "reason"];
    const PERFECT: [&'static str; 4] = ["n", "host", "compute-id", "found-ms"];
    const COMPUTE: [&'static str; 12] = [
        "id",
        "host",
        "address",
        "pid",
        "threads",
        "algorithm",
        "rate",
        "lo",
        "hi",
        "done",
        "tested",
        "since-ms",
    ];

    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &Self::NAMES, true)?;
        let mut status = Status {
            tested: a.u64("tested")?,
            frontier: a.u64("frontier")?,
            start: a.u64("start")?,
            until: a.u64("until")?,
            rate: a.u64("rate")?,
            done: a.flag("done")?,
            now_ms: a.u64("now-ms")?,
            checks_passed: a.opt_u64("checks-passed")?.unwrap_or(0),
            mismatches: a.opt_u64("mismatches")?.unwrap_or(0),
            eta_until: a.opt_u64("eta-until")?,
            done_ppm: a.opt_u64("done-ppm")?,
            eta_ms: a.opt_u64("eta-ms")?,
            flagged: Vec::new(),
            perfect: Vec::new(),
            computes: Vec::new(),
        };
        while let Some(child) = cur.next_child(tag, "status")? {
            match child.name {
                "perfect" => {
                    let a = cur.attrs(&child, &Self::PERFECT, true)?;
                    cur.no_content(&child, "perfect")?;
                    status.perfect.push(FoundPerfect {
                        n: a.u64("n")?,
                        host: a.xml("host")?,
                        compute_id: a.u64("compute-id")?,
                        found_ms: a.u64("found-ms")?,
                    });
                }
                "compute" => {
                    let a = cur.attrs(&child, &Self::COMPUTE, true)?;
                    cur.no_content(&child, "compute")?;
                    status.computes.push(ComputeStatus {
                        id: a.u64("id")?,
                        host: a.xml("host")?,
                        address: a.xml("address")?,
                        pid: a.u64("pid")?,
                        threads: a.u64("threads")?,
                        algorithm: a.keyword("algorithm")?,
                        rate: a.u64("rate")?,
                        lease: decode_lease(&a)?,
                        tested: a.u64("tested")?,
                        since_ms: a.u64("since-ms")?,
                    });
                }
                "flagged" => {
                    let a = cur.attrs(&child, &Self::FLAGGED, true)?;
                    cur.no_content(&child, "flagged")?;
                    status.flagged.push(FlaggedCompute {
                        host: a.xml("host")?,
                        pid: a.u64("pid")?,
                        offences: a.u64("offences")?,
                        refused: a.flag("refused")?,
                        reason: a.xml("reason")?,
                    });
                }
                _ => return Err(DecodeError::at(Problem::UnknownElement, child.name_span)),
            }
        }
        status.check()?;
        Ok(status)
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("status")
            .attr_u64("tested", self.tested)
            .attr_u64("frontier", self.frontier)
            .attr_u64("start", self.start)
            .attr_u64("until", self.until)
            .attr_u64("rate", self.rate)
            .attr("done", if self.done { "1" } else { "0" })
            .attr_u64("now-ms", self.now_ms);
        // Counters of double-checking: absent means 0, so a cluster without checks is unchanged.
        if self.checks_passed > 0 {
            w.attr_u64("checks-passed", self.checks_passed);
        }
        if self.mismatches > 0 {
            w.attr_u64("mismatches", self.mismatches);
        }
        opt_attr_u64(w, "eta-until", self.eta_until);
        opt_attr_u64(w, "done-ppm", self.done_ppm);
        opt_attr_u64(w, "eta-ms", self.eta_ms);
        if self.perfect.is_empty() && self.computes.is_empty() && self.flagged.is_empty() {
            w.end_empty();
            return;
        }
        w.end_open();
        for p in &self.perfect {
            w.open("perfect")
                .attr_u64("n", p.n)
                .attr_xml("host", p.host)
                .attr_u64("compute-id", p.compute_id)
                .attr_u64("found-ms", p.found_ms)
                .end_empty();
        }
        for c in &self.computes {
            w.open("compute")
                .attr_u64("id", c.id)
                .attr_xml("host", c.host)
                .attr_xml("address", c.address)
                .attr_u64("pid", c.pid)
                .attr_u64("threads", c.threads)
                .attr("algorithm", c.algorithm.as_str())
                .attr_u64("rate", c.rate);
            if let Some(lease) = c.lease {
                w.attr_u64("lo", lease.lo)
                    .attr_u64("hi", lease.hi)
                    .attr_u64("done", lease.done);
            }
            w.attr_u64("tested", c.tested)
                .attr_u64("since-ms", c.since_ms)
                .end_empty();
        }
        for f in &self.flagged {
            w.open("flagged")
                .attr_xml("host", f.host)
                .attr_u64("pid", f.pid)
                .attr_u64("offences", f.offences)
                .attr("refused", if f.refused { "1" } else { "0" })
                .attr_xml("reason", f.reason)
                .end_empty();
        }
        w.close("status");
    }

    pub(super) fn check(&self) -> Decoded<()> {
        for p in &self.perfect {
            check_text(p.host, "host")?;
        }
        for f in &self.flagged {
            check_text(f.host, "host")?;
            check_text(f.reason, "reason")?;
        }
        for c in &self.computes {
            check_text(c.host, "host")?;
            check_text(c.address, "address")?;
            if let Some(lease) = c.lease {
                if lease.lo == 0 {
                    return fail(Problem::ZeroStart, "lo");
                }
                if lease.hi <= lease.lo {
                    return fail(Problem::EmptyRange, "hi");
                }
                if !(lease.lo..=lease.hi).contains(&lease.done) {
                    return fail(Problem::OutsideRange, "done");
                }
            }
        }
        Ok(())
    }
}

/// `lo`, `hi` and `done` of a `<compute>`: all three, or none.
fn decode_lease<const N: usize>(a: &Attrs<'_, N>) -> Decoded<Option<LeaseStatus>> {
    match (a.opt_u64("lo")?, a.opt_u64("hi")?, a.opt_u64("done")?) {
        (None, None, None) => Ok(None),
        (Some(lo), Some(hi), Some(done)) => Ok(Some(LeaseStatus { lo, hi, done })),
        (None, _, _) => fail(Problem::PartialGroup, "lo"),
        (_, None, _) => fail(Problem::PartialGroup, "hi"),
        (_, _, None) => fail(Problem::PartialGroup, "done"),
    }
}

/// report asks manage to stop the search and every compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Kill<'a> {
    /// The answer to manage's challenge, when manage requires a token.
    pub mac: Option<Hex<'a>>,
}

impl<'a> Kill<'a> {
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["mac"], true)?;
        cur.no_content(tag, "kill")?;
        Ok(Kill {
            mac: a.opt_hex("mac")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("kill");
        opt_attr_hex(w, "mac", self.mac);
        w.end_empty();
    }
}

/// manage requires a token: answer this nonce with a MAC on the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Challenge<'a> {
    /// Fresh random bytes.
    pub nonce: Hex<'a>,
}

impl<'a> Challenge<'a> {
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["nonce"], true)?;
        cur.no_content(tag, "challenge")?;
        Ok(Challenge {
            nonce: a.hex("nonce")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("challenge")
            .attr("nonce", self.nonce.as_str())
            .end_empty();
    }
}

/// manage's answer to a kill: it is stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Stopping {
    /// How many computes it told to shut down.
    pub computes: u64,
}

impl Stopping {
    pub(super) fn decode<'a>(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["computes"], true)?;
        cur.no_content(tag, "stopping")?;
        Ok(Stopping {
            computes: a.u64("computes")?,
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("stopping")
            .attr_u64("computes", self.computes)
            .end_empty();
    }
}

/// Something went wrong; after most codes the sender closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ErrorMessage<'a> {
    /// What kind of error.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: XmlStr<'a>,
    /// The element or attribute it is about, when there is one.
    pub about: Option<XmlStr<'a>>,
}

impl<'a> ErrorMessage<'a> {
    pub(super) fn decode(cur: &mut Cursor<'_, 'a>, tag: &Tag<'a>) -> Decoded<Self> {
        let a = cur.attrs(tag, &["code", "message", "about"], true)?;
        cur.no_content(tag, "error")?;
        Ok(ErrorMessage {
            code: a.keyword("code")?,
            message: a.xml("message")?,
            about: a.opt_xml("about"),
        })
    }

    pub(super) fn encode(&self, w: &mut Writer<'_>) {
        w.open("error")
            .attr("code", self.code.as_str())
            .attr_xml("message", self.message);
        opt_attr_xml(w, "about", self.about);
        w.end_empty();
    }

    pub(super) fn check(&self) -> Decoded<()> {
        check_text(self.message, "message")?;
        match self.about {
            Some(about) => check_text(about, "about"),
            None => Ok(()),
        }
    }
}
