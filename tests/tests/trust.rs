//! Who manage trusts, end to end: the token guards `report -k` and, with `--require-token`,
//! every compute; a compute that claims false perfect numbers is flagged, then refused.

use std::time::{Duration, Instant};

use sigma_tests::raw::{attr, num, status, FakeCompute};
use sigma_tests::{Manage, Process, PERFECT_NUMBERS};

const WAIT: Duration = Duration::from_secs(30);

fn write_token(dir: &std::path::Path, token: &str) -> String {
    let path = dir.join("other-token");
    std::fs::write(&path, format!("{token}\n")).expect("writing a token file");
    path.to_str()
        .expect("temporary paths are UTF-8")
        .to_string()
}

#[test]
fn kill_needs_the_token_and_a_wrong_one_changes_nothing() {
    let mut manage = Manage::start(&["--until", "100000000000"]);
    let address = manage.address_arg();
    let wrong = write_token(
        manage.state.path(),
        "00000000000000000000000000000000000000000000000000000000000000ff",
    );

    let mut refused = Process::start("report", &[&address, "-k", "--token-file", &wrong]);
    let code = refused.wait_exit(WAIT).expect("report ends");
    assert!(!code.success(), "a wrong token must fail");
    let said = refused.stderr_lines().join("\n");
    assert!(said.contains("unauthorized"), "stderr: {said}");
    assert!(
        manage
            .process
            .wait_for_stderr("refused: wrong answer to the challenge", WAIT)
            .is_some(),
        "manage logs the failure"
    );

    // Nothing changed: manage still serves, and the right token still works.
    let (code, lines, _) = manage.report(&["--xml"]);
    assert!(code.success());
    assert!(lines.concat().starts_with("<status "), "{lines:?}");
    let (code, lines, _) = manage.report(&["-k"]);
    assert!(code.success(), "{lines:?}");
    assert!(
        lines.concat().contains("shutting the cluster down"),
        "{lines:?}"
    );
    manage.process.expect_clean_exit(Duration::from_secs(10));
}

#[test]
fn computes_must_prove_the_token_when_manage_requires_it() {
    let mut manage = Manage::start(&[
        "--require-token",
        "--until",
        "100000000000",
        "--target-seconds",
        "1",
    ]);
    let address = manage.address_arg();

    let mut without = Process::start("compute", &[&address, "--threads", "1"]);
    let code = without
        .wait_exit(WAIT)
        .expect("a compute without the token gives up");
    assert_eq!(code.code(), Some(1), "it exits 1");
    let said = without.stderr_lines();
    let last = said.last().cloned().unwrap_or_default();
    assert!(last.contains("token"), "one clear last line: {said:?}");
    assert!(!said.iter().any(|l| l.contains("panicked")), "{said:?}");

    let token = manage.token_file();
    let token = token.to_str().expect("temporary paths are UTF-8");
    let mut with = manage.start_compute(&["--threads", "1", "--token-file", token]);
    assert!(manage
        .process
        .wait_for_stderr("proved it holds the token", WAIT)
        .is_some());
    assert!(
        manage
            .process
            .wait_for_stdout(" result lease=", WAIT)
            .is_some(),
        "the compute with the token gets work done"
    );
    manage.process.signal(sigma_tests::SIGINT);
    manage.process.expect_clean_exit(Duration::from_secs(10));
    with.expect_clean_exit(Duration::from_secs(10));
}

/// Sends the result of the fake compute's whole lease, claiming `claimed` is perfect.
fn claim(compute: &mut FakeCompute, claimed: u64) {
    let result = format!(
        r#"<result lease="{}" lo="{}" hi="{}" elapsed-ms="5" checksum="0"><perfect n="{claimed}"/></result>"#,
        compute.lease, compute.lo, compute.hi
    );
    let ack = compute.raw.ask(result);
    assert_eq!(ack, format!(r#"<ack lease="{}"/>"#, compute.lease));
}

/// The `<flagged>` row of host `liar`, when there is one.
fn liar_row(address: std::net::SocketAddr) -> Option<String> {
    let status = status(address);
    status
        .split("<flagged ")
        .skip(1)
        .map(|rest| format!("<flagged {}", rest.split("/>").next().unwrap_or("")))
        .find(|row| attr(row, "host").as_deref() == Some("liar"))
}

#[test]
fn false_claims_flag_a_compute_and_three_get_it_refused() {
    let manage = Manage::start(&[
        "--start",
        "1000",
        "--until",
        "1000000000000",
        "--double-check",
        "0",
    ]);
    let hello = r#"<hello version="2" host="liar" pid="4242" threads="1" algorithm="sieve" ops-per-sec="1000000"/>"#;
    let mut liar = FakeCompute::join_as(manage.address, hello);
    for offence in 1..=3u64 {
        let claimed = (liar.lo..liar.hi)
            .find(|n| *n >= 2 && !PERFECT_NUMBERS.contains(n))
            .expect("a lease holds a number that is not perfect");
        claim(&mut liar, claimed);
        // Claims are checked off the reactor thread: wait for the verdict to show.
        let deadline = Instant::now() + WAIT;
        loop {
            let row = liar_row(manage.address);
            if row
                .as_deref()
                .is_some_and(|r| num(r, "offences") == offence)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "offence {offence} never showed: {row:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if offence < 3 {
            liar.request();
        }
    }
    let row = liar_row(manage.address).expect("the liar is listed");
    assert_eq!(attr(&row, "refused").as_deref(), Some("1"), "{row}");
    assert!(
        attr(&row, "reason").is_some_and(|r| r.contains("is perfect")),
        "{row}"
    );
    // No false number was recorded as perfect.
    let status = status(manage.address);
    assert!(!status.contains("<perfect "), "{status}");
    // Refused: its next request is answered with an error and the connection closes.
    liar.raw.send_ok("<request/>");
    liar.raw.expect_error_and_close("unauthorized");
    // An honest newcomer is still served.
    let mut honest = FakeCompute::join(manage.address);
    honest.finish();
}

/// The way in that `<challenge-request/>` opens: any peer may ask for nonces, but a wrong answer,
/// or the submission token's right answer to a `<kill>`, is refused and closes the connection;
/// manage carries on and the cluster token still works.
#[test]
fn challenge_requests_give_no_right_and_the_submission_token_cannot_kill() {
    use sigma_tests::raw::Raw;
    use xmlwire::protocol::Hex;
    let mut manage = Manage::start(&["--until", "100000000000"]);

    // Nonces on demand, each replacing the last; a made-up answer is refused.
    let mut stranger = Raw::connect(manage.address);
    let first = stranger.ask("<challenge-request/>");
    let second = stranger.ask("<challenge-request/>");
    let (first, second) = (attr(&first, "nonce"), attr(&second, "nonce"));
    assert!(first.is_some() && second.is_some() && first != second);
    stranger.send_ok(format!("<kill mac=\"{}\"/>", "ab".repeat(32)));
    stranger.expect_error_and_close("unauthorized");

    // The submission token answers right, and still may not stop the cluster.
    let submit = std::fs::read_to_string(manage.state.path().join("submit-token"))
        .expect("the submission token");
    let mut submitter = Raw::connect(manage.address);
    let challenge = submitter.ask("<challenge-request/>");
    let nonce = attr(&challenge, "nonce").expect("a nonce");
    let mac = xmlwire::auth::answer(submit.trim(), Hex::new(&nonce).expect("hex nonce"));
    submitter.send_ok(format!("<kill mac=\"{mac}\"/>"));
    let why = submitter.expect_error_and_close("unauthorized");
    assert!(why.contains("no other right"), "{why}");

    // Nothing changed: manage serves, and the cluster token stops it.
    let (code, lines, _) = manage.report(&["--xml"]);
    assert!(code.success());
    assert!(lines.concat().starts_with("<status "), "{lines:?}");
    let (code, lines, _) = manage.report(&["-k"]);
    assert!(code.success(), "{lines:?}");
    manage.process.expect_clean_exit(Duration::from_secs(10));
}
