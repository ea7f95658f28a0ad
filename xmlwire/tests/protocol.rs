//! The protocol's messages: golden encodings, decode errors, and round trips of every variant.

use proptest::prelude::*;
use xmlwire::protocol::{
    decode, Ack, Algorithm, Assign, Auth, Base64, Challenge, ComputeStatus, Control, DecodeError,
    ErrorCode, ErrorMessage, FlaggedCompute, FoundPerfect, Hello, Hex, Job, JobResult, JobStatus,
    Kill, Language, LeaseStatus, Message, Output, Payload, PerfectList, Problem, Program, Progress,
    Run, Schedule, Shutdown, Status, Stopping, Wait, Welcome, WorkResult, PROTOCOL_VERSION,
    VERSION_MISMATCH,
};
use xmlwire::{Frame, Limits, Reader, XmlStr};

/// Runs `f` on the one message in `xml`.
fn with_frame<R>(xml: &str, f: impl FnOnce(&Frame<'_>) -> R) -> R {
    let mut reader = Reader::new(Limits::DEFAULT);
    reader.feed(xml.as_bytes()).expect("feed");
    let frame = reader
        .next_message()
        .unwrap_or_else(|e| panic!("{xml}: not well-formed: {e:?}"))
        .unwrap_or_else(|| panic!("{xml}: not one complete message"));
    f(&frame)
}

fn encode(message: &Message<'_>) -> String {
    let mut out = Vec::new();
    message.encode(&mut out);
    String::from_utf8(out).expect("encodings are UTF-8")
}

fn hex(text: &'static str) -> Hex<'static> {
    Hex::new(text).expect("valid hex")
}

fn b64(text: &'static str) -> Base64<'static> {
    Base64::new(text).expect("valid base64")
}

fn plain(text: &str) -> XmlStr<'_> {
    XmlStr::Plain(text)
}

fn hello_c() -> Program<'static> {
    Program {
        language: Language::C,
        name: plain("hello.c"),
        time_limit_ms: 5000,
        memory_limit_mb: 256,
        source: Payload::Text(plain("int main(void) { return 1 < 2 && 3 > 2; }")),
        stdin: Some(Payload::Base64(b64("AAEC"))),
    }
}

/// Every message, built by a program, with its exact encoding.
fn golden() -> Vec<(Message<'static>, &'static str)> {
    vec![
        (
            Message::Hello(Hello {
                version: 2,
                host: plain("node-07"),
                pid: 4242,
                threads: 8,
                algorithm: Algorithm::Sieve,
                ops_per_sec: 812345678,
            }),
            r#"<hello version="2" host="node-07" pid="4242" threads="8" algorithm="sieve" ops-per-sec="812345678"/>"#,
        ),
        (
            Message::Welcome(Welcome {
                compute_id: 3,
                target_ms: 15000,
                session: hex("00ff10ab"),
                nonce: hex("0123456789abcdef"),
            }),
            r#"<welcome compute-id="3" target-ms="15000" session="00ff10ab" nonce="0123456789abcdef"/>"#,
        ),
        (
            Message::Auth(Auth {
                mac: hex("deadbeef"),
            }),
            r#"<auth mac="deadbeef"/>"#,
        ),
        (Message::Request, "<request/>"),
        (
            Message::Assign(Assign {
                lease: 17,
                lo: 1000,
                hi: 2000,
                deadline_ms: 45000,
            }),
            r#"<assign lease="17" lo="1000" hi="2000" deadline-ms="45000"/>"#,
        ),
        (Message::Wait(Wait { ms: 2000 }), r#"<wait ms="2000"/>"#),
        (
            Message::Progress(Progress {
                lease: 17,
                done: 1500,
            }),
            r#"<progress lease="17" done="1500"/>"#,
        ),
        (
            Message::Result(WorkResult {
                lease: 17,
                lo: 1000,
                hi: 1500,
                elapsed_ms: 7000,
                checksum: 123,
                perfect: PerfectList::new(),
            }),
            r#"<result lease="17" lo="1000" hi="1500" elapsed-ms="7000" checksum="123"/>"#,
        ),
        (
            Message::Result(WorkResult {
                lease: 2,
                lo: 1,
                hi: 10000,
                elapsed_ms: 3,
                checksum: u64::MAX,
                perfect: PerfectList::from_slice(&[6, 28, 496, 8128]).unwrap(),
            }),
            concat!(
                r#"<result lease="2" lo="1" hi="10000" elapsed-ms="3" checksum="18446744073709551615">"#,
                r#"<perfect n="6"/><perfect n="28"/><perfect n="496"/><perfect n="8128"/></result>"#
            ),
        ),
        (Message::Ack(Ack { lease: 17 }), r#"<ack lease="17"/>"#),
        (Message::Bye, "<bye/>"),
        (Message::Heartbeat, "<heartbeat/>"),
        (
            Message::Control(Control {
                compute_id: 3,
                session: hex("00ff10ab"),
                accept_jobs: false,
            }),
            r#"<control compute-id="3" session="00ff10ab"/>"#,
        ),
        (
            Message::Control(Control {
                compute_id: 4,
                session: hex("00ff10ab"),
                accept_jobs: true,
            }),
            r#"<control compute-id="4" session="00ff10ab" accept-jobs="1"/>"#,
        ),
        (
            Message::Shutdown(Shutdown {
                reason: plain("manage is shutting down"),
            }),
            r#"<shutdown reason="manage is shutting down"/>"#,
        ),
        (
            Message::Job(Job {
                id: 5,
                program: hello_c(),
            }),
            concat!(
                r#"<job id="5" language="c" name="hello.c" time-limit-ms="5000" memory-limit-mb="256">"#,
                r#"<source>int main(void) { return 1 &lt; 2 &amp;&amp; 3 &gt; 2; }</source>"#,
                r#"<stdin encoding="base64">AAEC</stdin></job>"#
            ),
        ),
        (
            Message::Job(Job {
                id: 6,
                program: Program {
                    language: Language::Cpp,
                    name: plain("a \"b\".cpp"),
                    source: Payload::Text(plain("")),
                    stdin: Some(Payload::Text(plain("1 2\n3\r\n"))),
                    ..hello_c()
                },
            }),
            concat!(
                r#"<job id="6" language="cpp" name="a &quot;b&quot;.cpp" time-limit-ms="5000" memory-limit-mb="256">"#,
                "<source></source><stdin>1 2\n3&#13;\n</stdin></job>"
            ),
        ),
        (
            Message::JobResult(JobResult {
                id: 5,
                status: JobStatus::Ok,
                exit_code: Some(0),
                signal: None,
                cpu_ms: 12,
                wall_ms: 15,
                peak_kb: 1024,
                compute_id: Some(3),
                host: Some(plain("node-07")),
                message: None,
                stdout: Output {
                    data: b64("aGVsbG8K"),
                    truncated: false,
                },
                stderr: Output {
                    data: b64("AA=="),
                    truncated: true,
                },
                compiler_output: Output {
                    data: Base64::EMPTY,
                    truncated: true,
                },
            }),
            concat!(
                r#"<job-result id="5" status="ok" exit-code="0" cpu-ms="12" wall-ms="15" peak-kb="1024" compute-id="3" host="node-07">"#,
                r#"<stdout>aGVsbG8K</stdout><stderr truncated="1">AA==</stderr><compiler-output truncated="1"/></job-result>"#
            ),
        ),
        (
            Message::JobResult(JobResult {
                id: 6,
                status: JobStatus::Signal,
                exit_code: None,
                signal: Some(11),
                cpu_ms: 0,
                wall_ms: 0,
                peak_kb: 0,
                compute_id: None,
                host: None,
                message: Some(plain("segfault")),
                stdout: Output::default(),
                stderr: Output::default(),
                compiler_output: Output::default(),
            }),
            r#"<job-result id="6" status="signal" signal="11" cpu-ms="0" wall-ms="0" peak-kb="0" message="segfault"/>"#,
        ),
        (Message::StatusRequest, "<status-request/>"),
        (Message::ChallengeRequest, "<challenge-request/>"),
        (
            Message::Status(Status {
                tested: 40000000,
                frontier: 40000001,
                start: 1,
                until: 40000000,
                rate: 123456,
                done: true,
                now_ms: 1700000000000,
                checks_passed: 4,
                mismatches: 1,
                eta_until: Some(40000000),
                done_ppm: Some(1000000),
                eta_ms: Some(0),
                flagged: vec![FlaggedCompute {
                    host: plain("node-09"),
                    pid: 77,
                    offences: 3,
                    refused: true,
                    reason: plain("claimed 12 is perfect"),
                }],
                perfect: vec![FoundPerfect {
                    n: 6,
                    host: plain("node-07"),
                    compute_id: 3,
                    found_ms: 1700000000001,
                }],
                computes: vec![
                    ComputeStatus {
                        id: 3,
                        host: plain("node-07"),
                        address: plain("10.0.0.7:51234"),
                        pid: 4242,
                        threads: 8,
                        algorithm: Algorithm::Sieve,
                        rate: 50000000,
                        lease: Some(LeaseStatus {
                            lo: 1000,
                            hi: 2000,
                            done: 1500,
                        }),
                        tested: 123,
                        since_ms: 1699999999999,
                    },
                    ComputeStatus {
                        id: 4,
                        host: plain("node-08"),
                        address: plain("[::1]:40000"),
                        pid: 1,
                        threads: 2,
                        algorithm: Algorithm::Trial,
                        rate: 7,
                        lease: None,
                        tested: 0,
                        since_ms: 1700000000000,
                    },
                ],
            }),
            concat!(
                r#"<status tested="40000000" frontier="40000001" start="1" until="40000000" rate="123456" done="1" now-ms="1700000000000" checks-passed="4" mismatches="1" eta-until="40000000" done-ppm="1000000" eta-ms="0">"#,
                r#"<perfect n="6" host="node-07" compute-id="3" found-ms="1700000000001"/>"#,
                r#"<compute id="3" host="node-07" address="10.0.0.7:51234" pid="4242" threads="8" algorithm="sieve" rate="50000000" lo="1000" hi="2000" done="1500" tested="123" since-ms="1699999999999"/>"#,
                r#"<compute id="4" host="node-08" address="[::1]:40000" pid="1" threads="2" algorithm="trial" rate="7" tested="0" since-ms="1700000000000"/>"#,
                r#"<flagged host="node-09" pid="77" offences="3" refused="1" reason="claimed 12 is perfect"/>"#,
                r#"</status>"#
            ),
        ),
        (
            Message::Status(Status::default()),
            r#"<status tested="0" frontier="0" start="0" until="0" rate="0" done="0" now-ms="0"/>"#,
        ),
        (Message::Kill(Kill { mac: None }), "<kill/>"),
        (
            Message::Kill(Kill {
                mac: Some(hex("ab12")),
            }),
            r#"<kill mac="ab12"/>"#,
        ),
        (
            Message::Challenge(Challenge { nonce: hex("0011") }),
            r#"<challenge nonce="0011"/>"#,
        ),
        (
            Message::Stopping(Stopping { computes: 3 }),
            r#"<stopping computes="3"/>"#,
        ),
        (
            Message::Run(Run {
                schedule: Schedule::LeastLoaded,
                mac: Some(hex("ab")),
                program: Program {
                    language: Language::Python,
                    name: plain("x.py"),
                    time_limit_ms: 1000,
                    memory_limit_mb: 64,
                    source: Payload::Text(plain("print(\"hi\")")),
                    stdin: None,
                },
            }),
            concat!(
                r#"<run language="python" name="x.py" time-limit-ms="1000" memory-limit-mb="64" schedule="least-loaded" mac="ab">"#,
                r#"<source>print("hi")</source></run>"#
            ),
        ),
        (
            Message::Error(ErrorMessage {
                code: ErrorCode::BadMessage,
                message: plain("human <text> & more"),
                about: Some(plain("lo")),
            }),
            r#"<error code="bad-message" message="human &lt;text&gt; &amp; more" about="lo"/>"#,
        ),
    ]
}

#[test]
fn golden_encodings_decode_back() {
    let mut names = std::collections::BTreeSet::new();
    for (message, xml) in golden() {
        assert_eq!(message.validate(), Ok(()), "{xml}");
        assert_eq!(encode(&message), xml);
        with_frame(xml, |frame| {
            let decoded = decode(frame).unwrap_or_else(|e| panic!("{xml}: {e}"));
            assert_eq!(decoded, message, "{xml}");
            // Decoded strings are raw, and encode back to the same bytes.
            assert_eq!(encode(&decoded), xml);
        });
        names.insert(message.name());
    }
    assert_eq!(
        names.len(),
        23,
        "every message has a golden example: {names:?}"
    );
}

#[test]
fn decoding_accepts_any_attribute_order_whitespace_and_cdata() {
    with_frame(
        r#"<assign  hi="2000"
            deadline-ms='45000' lease="17" lo="1000" ></assign>"#,
        |frame| {
            let expected = Message::Assign(Assign {
                lease: 17,
                lo: 1000,
                hi: 2000,
                deadline_ms: 45000,
            });
            assert_eq!(decode(frame), Ok(expected));
        },
    );
    let status = "<status tested=\"5\" frontier=\"6\" start=\"1\" until=\"9\" rate=\"0\" done=\"0\" now-ms=\"1\">\n  \
                  <perfect n=\"6\" host=\"h\" compute-id=\"1\" found-ms=\"2\"></perfect>\n\t\r\n</status>";
    with_frame(status, |frame| match decode(frame) {
        Ok(Message::Status(s)) => assert_eq!(s.perfect.len(), 1),
        other => panic!("{other:?}"),
    });
    let job = concat!(
        r#"<job id="1" language="rust" name="m.rs" time-limit-ms="1" memory-limit-mb="1"> "#,
        r#"<stdin/><source><![CDATA[fn main() { if 1 < 2 && true { println!("]]]]><![CDATA[>"); } }]]></source>"#,
        "\n</job>"
    );
    // A source split over two CDATA sections is two pieces: refused.
    with_frame(job, |frame| {
        let error = decode(frame).unwrap_err();
        assert_eq!(
            (error.problem, error.name(frame)),
            (Problem::SplitText, "source")
        );
    });
    let job = concat!(
        r#"<job id="1" language="rust" name="m.rs" time-limit-ms="1" memory-limit-mb="1"> "#,
        r#"<stdin/><source><![CDATA[fn main() { if 1 < 2 && true {} }]]></source>"#,
        "\n</job>"
    );
    with_frame(job, |frame| match decode(frame) {
        Ok(Message::Job(job)) => {
            assert_eq!(
                job.program.source,
                Payload::Text(plain("fn main() { if 1 < 2 && true {} }"))
            );
            assert_eq!(job.program.stdin, Some(Payload::Text(plain(""))));
            let mut bytes = Vec::new();
            job.program.source.bytes_into(&mut bytes);
            assert_eq!(bytes, b"fn main() { if 1 < 2 && true {} }");
        }
        other => panic!("{other:?}"),
    });
}

#[test]
fn references_resolve_in_text_and_base64_decodes() {
    let xml = concat!(
        r#"<job-result id="1" status="runtime-error" exit-code="3" cpu-ms="1" wall-ms="2" peak-kb="3" host="n&#233;ud&amp;co">"#,
        r#"<stderr>AP8Kc2VnZmF1bHQ=</stderr></job-result>"#
    );
    with_frame(xml, |frame| match decode(frame) {
        Ok(Message::JobResult(r)) => {
            assert_eq!(r.host, Some(plain("néud&co")));
            let mut bytes = Vec::new();
            r.stderr.data.decode_into(&mut bytes);
            assert_eq!(bytes, b"\x00\xff\nsegfault");
            assert_eq!(r.stderr.data.decoded_len(), bytes.len());
            assert!(r.stdout.data.is_empty() && !r.stdout.truncated);
        }
        other => panic!("{other:?}"),
    });
}

#[test]
fn hello_of_another_version_decodes_for_a_clear_reply() {
    with_frame(
        r#"<hello version="3" colour="blue" pid="x"><future/></hello>"#,
        |frame| {
            let Ok(Message::Hello(hello)) = decode(frame) else {
                panic!("a hello of another version decodes");
            };
            assert_eq!(hello.version, 3);
            let reply = hello.check_version().unwrap_err();
            assert_eq!(reply.code, ErrorCode::Version);
            assert!(reply
                .message
                .as_plain()
                .unwrap()
                .contains(&format!("version {PROTOCOL_VERSION}")));
            assert_eq!(
                encode(&Message::Error(reply)),
                r#"<error code="version" message="unsupported protocol version: this manage speaks version 2" about="version"/>"#
            );
        },
    );
    with_frame(
        r#"<hello version="2" host="h" pid="1" threads="1" algorithm="naive" ops-per-sec="1"/>"#,
        |frame| match decode(frame) {
            Ok(Message::Hello(hello)) => assert_eq!(hello.check_version(), Ok(())),
            other => panic!("{other:?}"),
        },
    );
}

/// VERSION_MISMATCH is spelled out (a const cannot format PROTOCOL_VERSION into it): this keeps
/// the two together when the version changes.
#[test]
fn the_version_mismatch_message_names_the_protocol_version() {
    assert_eq!(
        VERSION_MISMATCH,
        format!("unsupported protocol version: this manage speaks version {PROTOCOL_VERSION}")
    );
}

/// `(message, problem, element or attribute named)`.
const DECODE_ERRORS: &[(&str, Problem, &str)] = &[
    // Numbers.
    (
        r#"<assign lease="17" lo="01000" hi="2000" deadline-ms="1"/>"#,
        Problem::LeadingZero,
        "lo",
    ),
    (
        r#"<assign lease="17" lo="00" hi="2000" deadline-ms="1"/>"#,
        Problem::LeadingZero,
        "lo",
    ),
    (
        r#"<assign lease="17" lo="+1000" hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lo",
    ),
    (
        r#"<assign lease="-17" lo="1000" hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lease",
    ),
    (
        r#"<assign lease="17" lo="1000" hi="18446744073709551616" deadline-ms="1"/>"#,
        Problem::Overflow,
        "hi",
    ),
    (
        r#"<assign lease="17" lo="1000" hi="2000" deadline-ms=""/>"#,
        Problem::EmptyNumber,
        "deadline-ms",
    ),
    (
        r#"<assign lease="17" lo="1000" hi="2000" deadline-ms="1.5"/>"#,
        Problem::NotDecimal,
        "deadline-ms",
    ),
    (
        r#"<assign lease="17" lo="1e3" hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lo",
    ),
    (
        r#"<assign lease="17" lo=" 1000" hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lo",
    ),
    (
        r#"<assign lease="17" lo="1000 " hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lo",
    ),
    (
        r#"<assign lease="17" lo="0x10" hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lo",
    ),
    (
        r#"<assign lease="17" lo="&#49;000" hi="2000" deadline-ms="1"/>"#,
        Problem::NotDecimal,
        "lo",
    ),
    (r#"<wait ms="٣"/>"#, Problem::NotDecimal, "ms"),
    // Structure.
    (
        r#"<assign lease="17" lo="1000" hi="2000" deadline-ms="1" colour="red"/>"#,
        Problem::UnknownAttribute,
        "colour",
    ),
    (
        r#"<assignment lease="17"/>"#,
        Problem::UnknownElement,
        "assignment",
    ),
    (
        r#"<assign lease="17" lo="1000" deadline-ms="1"/>"#,
        Problem::MissingAttribute,
        "hi",
    ),
    (
        r#"<request>please</request>"#,
        Problem::UnexpectedText,
        "request",
    ),
    (
        r#"<request><![CDATA[x]]></request>"#,
        Problem::UnexpectedText,
        "request",
    ),
    (r#"<bye><now/></bye>"#, Problem::UnknownElement, "now"),
    (
        r#"<heartbeat><now/></heartbeat>"#,
        Problem::UnknownElement,
        "now",
    ),
    (
        r#"<request again="1"/>"#,
        Problem::UnknownAttribute,
        "again",
    ),
    (r#"<ack lease="1">1</ack>"#, Problem::UnexpectedText, "ack"),
    // Ranges.
    (
        r#"<assign lease="17" lo="2000" hi="2000" deadline-ms="1"/>"#,
        Problem::EmptyRange,
        "hi",
    ),
    (
        r#"<assign lease="17" lo="3000" hi="2000" deadline-ms="1"/>"#,
        Problem::EmptyRange,
        "hi",
    ),
    (
        r#"<assign lease="17" lo="0" hi="2000" deadline-ms="1"/>"#,
        Problem::ZeroStart,
        "lo",
    ),
    (
        r#"<result lease="1" lo="10" hi="9" elapsed-ms="1" checksum="0"/>"#,
        Problem::ReversedRange,
        "hi",
    ),
    (
        r#"<result lease="1" lo="0" hi="9" elapsed-ms="1" checksum="0"/>"#,
        Problem::ZeroStart,
        "lo",
    ),
    // Perfect numbers in a result.
    (
        concat!(
            r#"<result lease="1" lo="1" hi="100" elapsed-ms="1" checksum="0">"#,
            r#"<perfect n="1"/><perfect n="2"/><perfect n="3"/><perfect n="4"/><perfect n="5"/>"#,
            r#"<perfect n="6"/><perfect n="7"/><perfect n="8"/><perfect n="9"/></result>"#
        ),
        Problem::TooMany,
        "perfect",
    ),
    (
        r#"<result lease="1" lo="10" hi="20" elapsed-ms="1" checksum="0"><perfect n="6"/></result>"#,
        Problem::OutsideRange,
        "perfect",
    ),
    (
        r#"<result lease="1" lo="1" hi="6" elapsed-ms="1" checksum="0"><perfect n="6"/></result>"#,
        Problem::OutsideRange,
        "perfect",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0"><perfect n="28"/><perfect n="6"/></result>"#,
        Problem::NotIncreasing,
        "perfect",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0"><perfect n="6"/><perfect n="6"/></result>"#,
        Problem::NotIncreasing,
        "perfect",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0"><prime n="7"/></result>"#,
        Problem::UnknownElement,
        "prime",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0"><perfect n="6" by="me"/></result>"#,
        Problem::UnknownAttribute,
        "by",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0"><perfect/></result>"#,
        Problem::MissingAttribute,
        "n",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0"><perfect n="6"><x/></perfect></result>"#,
        Problem::UnknownElement,
        "x",
    ),
    (
        r#"<result lease="1" lo="1" hi="99" elapsed-ms="1" checksum="0">6</result>"#,
        Problem::UnexpectedText,
        "result",
    ),
    // Hex.
    (r#"<auth mac="DEADBEEF"/>"#, Problem::BadHex, "mac"),
    (r#"<auth mac="abc"/>"#, Problem::BadHex, "mac"),
    (r#"<auth mac="xy"/>"#, Problem::BadHex, "mac"),
    (r#"<auth mac=""/>"#, Problem::BadHex, "mac"),
    (r#"<auth mac=" ab"/>"#, Problem::BadHex, "mac"),
    (
        r#"<auth mac="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00"/>"#,
        Problem::HexTooLong,
        "mac",
    ),
    (
        r#"<welcome compute-id="3" target-ms="1" session="0g" nonce="00"/>"#,
        Problem::BadHex,
        "session",
    ),
    (
        r#"<welcome compute-id="3" target-ms="1" session="00"/>"#,
        Problem::MissingAttribute,
        "nonce",
    ),
    (r#"<kill mac="z"/>"#, Problem::BadHex, "mac"),
    (
        r#"<control compute-id="3" session="0A"/>"#,
        Problem::BadHex,
        "session",
    ),
    // Keywords and flags.
    (
        r#"<hello version="2" host="h" pid="1" threads="1" algorithm="quick" ops-per-sec="1"/>"#,
        Problem::BadKeyword,
        "algorithm",
    ),
    (
        r#"<hello version="2" host="h" pid="1" threads="1" algorithm="Sieve" ops-per-sec="1"/>"#,
        Problem::BadKeyword,
        "algorithm",
    ),
    (
        r#"<hello version="2" host="h" pid="1" threads="1" algorithm="sieve" ops-per-sec="1" colour="x"/>"#,
        Problem::UnknownAttribute,
        "colour",
    ),
    (
        r#"<hello version="2" host="h" threads="1" algorithm="sieve" ops-per-sec="1"/>"#,
        Problem::MissingAttribute,
        "pid",
    ),
    (r#"<hello version="01"/>"#, Problem::LeadingZero, "version"),
    (r#"<hello host="h"/>"#, Problem::MissingAttribute, "version"),
    (
        r#"<error code="oops" message="m"/>"#,
        Problem::BadKeyword,
        "code",
    ),
    (
        r#"<status tested="1" frontier="1" start="1" until="1" rate="1" done="yes" now-ms="1"/>"#,
        Problem::BadFlag,
        "done",
    ),
    // Jobs and runs.
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"/>"#,
        Problem::MissingChild,
        "source",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source/><source/></job>"#,
        Problem::DuplicateChild,
        "source",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source/><stdin/><stdin/></job>"#,
        Problem::DuplicateChild,
        "stdin",
    ),
    (
        r#"<job id="1" language="go" name="a.go" time-limit-ms="1" memory-limit-mb="1"><source/></job>"#,
        Problem::BadKeyword,
        "language",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source encoding="hex">00</source></job>"#,
        Problem::BadKeyword,
        "encoding",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source encoding="base64">AAE</source></job>"#,
        Problem::BadBase64,
        "source",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source>a<![CDATA[b]]></source></job>"#,
        Problem::SplitText,
        "source",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source>a<!-- x -->b</source></job>"#,
        Problem::SplitText,
        "source",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source><b/></source></job>"#,
        Problem::UnknownElement,
        "b",
    ),
    (
        r#"<job id="1" language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1">int main;<source/></job>"#,
        Problem::UnexpectedText,
        "job",
    ),
    (
        r#"<run language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1"><source/></run>"#,
        Problem::MissingAttribute,
        "schedule",
    ),
    (
        r#"<run language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1" schedule="fifo"><source/></run>"#,
        Problem::BadKeyword,
        "schedule",
    ),
    (
        r#"<run language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1" schedule="random" mac="x"><source/></run>"#,
        Problem::BadHex,
        "mac",
    ),
    (
        r#"<run language="c" name="a.c" time-limit-ms="1" memory-limit-mb="1" schedule="random" id="4"><source/></run>"#,
        Problem::UnknownAttribute,
        "id",
    ),
    // Job results.
    (
        r#"<job-result id="1" status="fine" cpu-ms="0" wall-ms="0" peak-kb="0"/>"#,
        Problem::BadKeyword,
        "status",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0"/>"#,
        Problem::MissingAttribute,
        "peak-kb",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0" peak-kb="0"><stdout>aGVsbG8</stdout></job-result>"#,
        Problem::BadBase64,
        "stdout",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0" peak-kb="0"><stdout>aGVs bG8=</stdout></job-result>"#,
        Problem::BadBase64,
        "stdout",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0" peak-kb="0"><stderr truncated="true"/></job-result>"#,
        Problem::BadFlag,
        "truncated",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0" peak-kb="0"><stdout/><stdout/></job-result>"#,
        Problem::DuplicateChild,
        "stdout",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0" peak-kb="0"><core/></job-result>"#,
        Problem::UnknownElement,
        "core",
    ),
    (
        r#"<job-result id="1" status="ok" cpu-ms="0" wall-ms="0" peak-kb="0"><stdout encoding="base64"/></job-result>"#,
        Problem::UnknownAttribute,
        "encoding",
    ),
    // Status.
    (
        r#"<status tested="1" frontier="1" start="1" until="1" rate="1" done="0" now-ms="1"><compute id="1" host="h" address="a" pid="1" threads="1" algorithm="sieve" rate="1" lo="1" hi="9" tested="1" since-ms="1"/></status>"#,
        Problem::PartialGroup,
        "done",
    ),
    (
        r#"<status tested="1" frontier="1" start="1" until="1" rate="1" done="0" now-ms="1"><compute id="1" host="h" address="a" pid="1" threads="1" algorithm="sieve" rate="1" hi="9" done="1" tested="1" since-ms="1"/></status>"#,
        Problem::PartialGroup,
        "lo",
    ),
    (
        r#"<status tested="1" frontier="1" start="1" until="1" rate="1" done="0" now-ms="1"><compute id="1" host="h" address="a" pid="1" threads="1" algorithm="sieve" rate="1" lo="5" hi="9" done="10" tested="1" since-ms="1"/></status>"#,
        Problem::OutsideRange,
        "done",
    ),
    (
        r#"<status tested="1" frontier="1" start="1" until="1" rate="1" done="0" now-ms="1"><perfect n="6" host="h" compute-id="1"/></status>"#,
        Problem::MissingAttribute,
        "found-ms",
    ),
    (
        r#"<status tested="1" frontier="1" start="1" until="1" rate="1" done="0" now-ms="1"><lease/></status>"#,
        Problem::UnknownElement,
        "lease",
    ),
];

#[test]
fn decode_errors_name_the_culprit() {
    for &(xml, problem, name) in DECODE_ERRORS {
        with_frame(xml, |frame| {
            let error = decode(frame).expect_err(xml);
            assert_eq!(
                (error.problem, error.name(frame)),
                (problem, name),
                "{xml}: {error}"
            );
            assert_eq!(error.code, ErrorCode::BadMessage, "{xml}");
            // The reply names it too, and is itself a valid message.
            let reply = Message::Error(error.to_message(frame));
            let text = encode(&reply);
            assert!(
                text.contains(&format!(r#"about="{name}""#)),
                "{xml}: {text}"
            );
            with_frame(&text, |reply_frame| {
                assert_eq!(decode(reply_frame).as_ref(), Ok(&reply))
            });
        });
    }
}

#[test]
fn validate_gives_the_error_decode_would() {
    let bad_assign = Message::Assign(Assign {
        lease: 1,
        lo: 5,
        hi: 5,
        deadline_ms: 1,
    });
    let error = bad_assign.validate().unwrap_err();
    assert_eq!(error.problem, Problem::EmptyRange);
    with_frame(&encode(&bad_assign), |frame| {
        assert_eq!(decode(frame), Err(error))
    });
    let control_char = Message::Shutdown(Shutdown {
        reason: plain("nul \0 here"),
    });
    assert_eq!(
        control_char.validate().unwrap_err().problem,
        Problem::BadCharacter
    );
    assert_eq!(
        DecodeError {
            code: ErrorCode::BadMessage,
            problem: Problem::Overflow,
            name: xmlwire::protocol::Name::Known("hi")
        }
        .to_string(),
        "bad-message: number does not fit in 64 bits (hi)"
    );
}

#[test]
fn hand_made_frames_never_panic() {
    use xmlwire::{Span, Token};
    let bytes = b"<ack lease=\"1\" lease=\"2\"/>";
    let span = |start, end| Span { start, end };
    let attribute = |name: Span, value: Span| Token::Attribute { name, value };
    let duplicate = [
        Token::ElementStart { name: span(1, 4) },
        attribute(span(5, 10), span(12, 13)),
        attribute(span(15, 20), span(22, 23)),
        Token::ElementEmpty,
    ];
    let frame = Frame {
        bytes,
        tokens: &duplicate,
        offset: 0,
    };
    let error = decode(&frame).unwrap_err();
    assert_eq!(
        (error.problem, error.name(&frame)),
        (Problem::DuplicateAttribute, "lease")
    );
    // Broken token streams, and spans out of range.
    let broken: [&[Token]; 5] = [
        &[],
        &[Token::ElementEmpty],
        &[Token::ElementStart { name: span(1, 4) }],
        &[
            Token::ElementStart { name: span(1, 4) },
            attribute(span(5, 10), span(12, 13)),
            Token::ElementEmpty,
            Token::ElementEmpty,
        ],
        &[
            Token::ElementStart {
                name: span(90, 9999),
            },
            Token::ElementEmpty,
        ],
    ];
    for tokens in broken {
        let frame = Frame {
            bytes,
            tokens,
            offset: 0,
        };
        let error = decode(&frame).unwrap_err();
        assert!(
            matches!(
                error.problem,
                Problem::BrokenFrame | Problem::UnknownElement
            ),
            "{tokens:?}: {error}"
        );
    }
}

#[test]
fn reader_errors_map_to_codes() {
    let mut reader = Reader::new(Limits {
        max_message_bytes: 64,
        ..Limits::DEFAULT
    });
    reader.feed(&[b'<'; 1]).unwrap();
    reader.feed(&[b'a'; 100]).unwrap();
    let error = reader.next_message().unwrap_err();
    assert_eq!(ErrorCode::for_reader_error(&error), ErrorCode::TooLarge);
    let mut reader = Reader::new(Limits::DEFAULT);
    reader.feed(b"<a></b>").unwrap();
    let error = reader.next_message().unwrap_err();
    assert_eq!(ErrorCode::for_reader_error(&error), ErrorCode::BadXml);
}

// ---------------------------------------------------------------------------------------------
// Round trips of every variant, with arbitrary text.

/// Strategies make owned strings; messages borrow `&'static str`, so each test case's strings are
/// leaked (a few KiB over the whole run).
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// Any character XML can carry, weighted toward the ones that need escaping.
fn xml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::char::range(' ', '~'),
        2 => prop::sample::select(&['\t', '\n', '\r', '&', '<', '>', '"', '\'', ']', ';', '#'][..]),
        2 => prop::char::ranges(
            vec!['\u{80}'..='\u{D7FF}', '\u{E000}'..='\u{FFFD}', '\u{10000}'..='\u{10FFFF}'].into()
        ),
    ]
}

fn text() -> impl Strategy<Value = XmlStr<'static>> {
    prop::collection::vec(xml_char(), 0..24)
        .prop_map(|chars| XmlStr::Plain(leak(chars.into_iter().collect())))
}

fn hex_token() -> impl Strategy<Value = Hex<'static>> {
    prop::collection::vec(any::<u8>(), 1..=64).prop_map(|bytes| {
        let mut s = String::new();
        Hex::encode_into(&bytes, &mut s);
        Hex::new(leak(s)).expect("encode_into makes hex")
    })
}

fn base64() -> impl Strategy<Value = Base64<'static>> {
    prop::collection::vec(any::<u8>(), 0..48).prop_map(|bytes| {
        let mut s = String::new();
        Base64::encode_into(&bytes, &mut s);
        Base64::new(leak(s)).expect("encode_into makes base64")
    })
}

fn number() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(u64::MAX), 0..1000u64, any::<u64>()]
}

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(Algorithm::ALL)
}

fn payload() -> impl Strategy<Value = Payload<'static>> {
    prop_oneof![
        text().prop_map(Payload::Text),
        base64().prop_map(Payload::Base64)
    ]
}

fn output() -> impl Strategy<Value = Output<'static>> {
    (base64(), any::<bool>()).prop_map(|(data, truncated)| Output { data, truncated })
}

fn program() -> impl Strategy<Value = Program<'static>> {
    (
        prop::sample::select(Language::ALL),
        text(),
        number(),
        number(),
        payload(),
        prop::option::of(payload()),
    )
        .prop_map(
            |(language, name, time_limit_ms, memory_limit_mb, source, stdin)| Program {
                language,
                name,
                time_limit_ms,
                memory_limit_mb,
                source,
                stdin,
            },
        )
}

/// `lo >= 1` and `hi > lo`.
fn range() -> impl Strategy<Value = (u64, u64)> {
    (1..u64::MAX).prop_flat_map(|lo| (Just(lo), prop_oneof![lo + 1..=u64::MAX, Just(lo + 1)]))
}

fn work_result() -> impl Strategy<Value = WorkResult> {
    (range(), any::<bool>(), number(), number(), number())
        .prop_flat_map(|((lo, hi), full, lease, elapsed_ms, checksum)| {
            // The finished prefix may be empty (hi == lo).
            let hi = if full { hi } else { lo };
            let perfect = if hi > lo {
                prop::collection::vec(lo..hi, 0..=8).boxed()
            } else {
                Just(Vec::new()).boxed()
            };
            (Just((lease, lo, hi, elapsed_ms, checksum)), perfect)
        })
        .prop_map(|((lease, lo, hi, elapsed_ms, checksum), mut numbers)| {
            numbers.sort_unstable();
            numbers.dedup();
            WorkResult {
                lease,
                lo,
                hi,
                elapsed_ms,
                checksum,
                perfect: PerfectList::from_slice(&numbers).expect("at most 8"),
            }
        })
}

fn compute_status() -> impl Strategy<Value = ComputeStatus<'static>> {
    let lease = prop::option::of(range().prop_flat_map(|(lo, hi)| (Just(lo), Just(hi), lo..=hi)))
        .prop_map(|lease| lease.map(|(lo, hi, done)| LeaseStatus { lo, hi, done }));
    (
        (number(), text(), text(), number(), number()),
        (algorithm(), number(), lease, number(), number()),
    )
        .prop_map(
            |((id, host, address, pid, threads), (algorithm, rate, lease, tested, since_ms))| {
                ComputeStatus {
                    id,
                    host,
                    address,
                    pid,
                    threads,
                    algorithm,
                    rate,
                    lease,
                    tested,
                    since_ms,
                }
            },
        )
}

fn status() -> impl Strategy<Value = Status<'static>> {
    let found =
        (number(), text(), number(), number()).prop_map(|(n, host, compute_id, found_ms)| {
            FoundPerfect {
                n,
                host,
                compute_id,
                found_ms,
            }
        });
    let flagged = (text(), number(), number(), any::<bool>(), text()).prop_map(
        |(host, pid, offences, refused, reason)| FlaggedCompute {
            host,
            pid,
            offences,
            refused,
            reason,
        },
    );
    (
        (number(), number(), number(), number(), number()),
        (any::<bool>(), number(), number(), number()),
        prop::collection::vec(found, 0..4),
        prop::collection::vec(compute_status(), 0..4),
        prop::collection::vec(flagged, 0..3),
        (
            prop::option::of(number()),
            prop::option::of(0..=1_000_000u64),
            prop::option::of(number()),
        ),
    )
        .prop_map(
            |(
                (tested, frontier, start, until, rate),
                (done, now_ms, checks_passed, mismatches),
                perfect,
                computes,
                flagged,
                (eta_until, done_ppm, eta_ms),
            )| Status {
                tested,
                frontier,
                start,
                until,
                rate,
                done,
                now_ms,
                checks_passed,
                mismatches,
                eta_until,
                done_ppm,
                eta_ms,
                flagged,
                perfect,
                computes,
            },
        )
}

fn job_result() -> impl Strategy<Value = JobResult<'static>> {
    (
        (number(), prop::sample::select(JobStatus::ALL)),
        (prop::option::of(number()), prop::option::of(number())),
        (number(), number(), number(), prop::option::of(number())),
        (prop::option::of(text()), prop::option::of(text())),
        (output(), output(), output()),
    )
        .prop_map(
            |(
                (id, status),
                (exit_code, signal),
                (cpu_ms, wall_ms, peak_kb, compute_id),
                (host, message),
                (stdout, stderr, compiler_output),
            )| JobResult {
                id,
                status,
                exit_code,
                signal,
                cpu_ms,
                wall_ms,
                peak_kb,
                compute_id,
                host,
                message,
                stdout,
                stderr,
                compiler_output,
            },
        )
}

fn message() -> impl Strategy<Value = Message<'static>> {
    let version = prop_oneof![3 => Just(PROTOCOL_VERSION), 1 => number()];
    prop_oneof![
        (version, text(), number(), number(), algorithm(), number()).prop_map(
            |(version, host, pid, threads, algorithm, ops_per_sec)| Message::Hello(Hello {
                version,
                host,
                pid,
                threads,
                algorithm,
                ops_per_sec,
            })
        ),
        (number(), number(), hex_token(), hex_token()).prop_map(
            |(compute_id, target_ms, session, nonce)| Message::Welcome(Welcome {
                compute_id,
                target_ms,
                session,
                nonce,
            })
        ),
        hex_token().prop_map(|mac| Message::Auth(Auth { mac })),
        Just(Message::Request),
        (number(), range(), number()).prop_map(|(lease, (lo, hi), deadline_ms)| {
            Message::Assign(Assign {
                lease,
                lo,
                hi,
                deadline_ms,
            })
        }),
        number().prop_map(|ms| Message::Wait(Wait { ms })),
        (number(), number()).prop_map(|(lease, done)| Message::Progress(Progress { lease, done })),
        work_result().prop_map(Message::Result),
        number().prop_map(|lease| Message::Ack(Ack { lease })),
        Just(Message::Bye),
        Just(Message::Heartbeat),
        (number(), hex_token(), any::<bool>()).prop_map(|(compute_id, session, accept_jobs)| {
            Message::Control(Control {
                compute_id,
                session,
                accept_jobs,
            })
        }),
        text().prop_map(|reason| Message::Shutdown(Shutdown { reason })),
        (number(), program()).prop_map(|(id, program)| Message::Job(Job { id, program })),
        job_result().prop_map(Message::JobResult),
        Just(Message::StatusRequest),
        Just(Message::ChallengeRequest),
        status().prop_map(Message::Status),
        prop::option::of(hex_token()).prop_map(|mac| Message::Kill(Kill { mac })),
        hex_token().prop_map(|nonce| Message::Challenge(Challenge { nonce })),
        number().prop_map(|computes| Message::Stopping(Stopping { computes })),
        (
            prop::sample::select(Schedule::ALL),
            prop::option::of(hex_token()),
            program()
        )
            .prop_map(|(schedule, mac, program)| Message::Run(Run {
                schedule,
                mac,
                program,
            })),
        (
            prop::sample::select(ErrorCode::ALL),
            text(),
            prop::option::of(text())
        )
            .prop_map(|(code, message, about)| Message::Error(ErrorMessage {
                code,
                message,
                about,
            })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips(message in message(), split in any::<prop::sample::Index>()) {
        prop_assert_eq!(message.validate(), Ok(()));
        let bytes = encode(&message);
        // Whole, and fed in two pieces cut anywhere.
        let cut = split.index(bytes.len() + 1);
        let mut reader = Reader::new(Limits::DEFAULT);
        reader.feed(&bytes.as_bytes()[..cut]).unwrap();
        if cut < bytes.len() {
            prop_assert!(reader.next_message().unwrap().is_none());
        }
        reader.feed(&bytes.as_bytes()[cut..]).unwrap();
        let frame = reader.next_message().unwrap().expect("a whole message");
        let decoded = decode(&frame);
        prop_assert_eq!(decoded.as_ref(), Ok(&message), "{}", bytes);
        // The decoded message holds raw text; it encodes back to the same bytes.
        let again = encode(&decoded.unwrap());
        prop_assert_eq!(again, bytes);
    }
}
