//! Liveness on loopback, with the bounds of `xmlwire::liveness` measured: manage sends
//! `<heartbeat/>` on a control connection every 5 s and closes a compute whose control
//! connection has been silent for 15 s (and keeps one that sends heartbeats); a compute whose
//! manage stops answering (a fake manage that welcomes it, then says nothing) gives it up after
//! 15 s of silence and connects again. The LAN test (`lan.rs`) measures the same bounds across a
//! pulled cable.

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use sigma_tests::raw::{attr, num, Next, Raw, HELLO};
use sigma_tests::{eventually, Manage, Process};
use xmlwire::liveness::{HEARTBEAT_INTERVAL, SILENCE_LIMIT};

const SECOND: Duration = Duration::from_secs(1);
/// manage's sweep runs every second, and the machine is shared.
const MARGIN: Duration = Duration::from_secs(3);

/// A compute's two connections: hello and welcome, then `<control>`.
fn join(manage: &Manage) -> (Raw, Raw, u64) {
    let mut work = Raw::connect(manage.address);
    let welcome = work.ask(HELLO);
    assert!(welcome.starts_with("<welcome "), "{welcome}");
    let id = num(&welcome, "compute-id");
    let session = attr(&welcome, "session").expect("a session");
    let mut control = Raw::connect(manage.address);
    control.send_ok(format!(
        r#"<control compute-id="{id}" session="{session}"/>"#
    ));
    (work, control, id)
}

#[test]
fn manage_heartbeats_and_closes_a_silent_compute() {
    let manage = Manage::start(&[]);
    let (mut silent_work, mut silent_control, silent_id) = join(&manage);
    let opened = Instant::now();
    let (_live_work, mut live_control, live_id) = join(&manage);

    // manage's heartbeats arrive every interval.
    match silent_control.next(HEARTBEAT_INTERVAL + MARGIN) {
        Next::Message(m) => assert_eq!(m, "<heartbeat/>"),
        other => panic!("expected a heartbeat within {HEARTBEAT_INTERVAL:?}: {other:?}"),
    }
    let first = opened.elapsed();
    assert!(
        first >= HEARTBEAT_INTERVAL - SECOND,
        "the first heartbeat came after {first:?}"
    );

    // One compute answers with heartbeats, the other says nothing: only the silent one goes.
    let closed = loop {
        live_control.send_ok("<heartbeat/>");
        match silent_control.next(HEARTBEAT_INTERVAL - SECOND) {
            Next::Message(m) => assert_eq!(m, "<heartbeat/>"),
            Next::Closed => break opened.elapsed(),
            Next::Timeout => {}
        }
        assert!(
            opened.elapsed() < SILENCE_LIMIT + 2 * MARGIN,
            "the silent compute is still connected after {:?}",
            opened.elapsed()
        );
    };
    eprintln!("manage closed the silent compute's control connection after {closed:?}");
    assert!(
        closed >= SILENCE_LIMIT - SECOND && closed <= SILENCE_LIMIT + MARGIN,
        "closed after {closed:?}, limit {SILENCE_LIMIT:?}"
    );
    assert_eq!(
        silent_work.next(MARGIN),
        Next::Closed,
        "its work connection too"
    );
    manage
        .process
        .wait_for_stderr(&format!("compute {silent_id} silent for "), SECOND)
        .expect("manage says why it closed the compute");
    // The heartbeating one stays, past the limit.
    while opened.elapsed() < SILENCE_LIMIT + MARGIN + SECOND {
        live_control.send_ok("<heartbeat/>");
        thread::sleep(SECOND);
    }
    let status = manage.status();
    let listed: Vec<u64> = status.computes.iter().map(|c| c.id).collect();
    assert_eq!(
        listed,
        vec![live_id],
        "only the heartbeating compute is left"
    );
}

#[test]
fn a_compute_gives_up_a_silent_manage_and_reconnects() {
    // A fake manage: welcomes the compute, takes its control connection, then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("bound").to_string();
    let compute = Process::start("compute", &[&address, "--threads", "1"]);
    let (stream, _) = listener.accept().expect("the compute connects");
    let mut work = Raw::from_stream(stream);
    match work.next(Duration::from_secs(60)) {
        Next::Message(m) => assert!(m.starts_with("<hello version=\"2\" "), "{m}"),
        other => panic!("expected a hello: {other:?}"),
    }
    work.send_ok(r#"<welcome compute-id="7" target-ms="1000" session="00ff" nonce="0011"/>"#);
    let (stream, _) = listener
        .accept()
        .expect("the compute opens its control connection");
    let mut control = Raw::from_stream(stream);
    let opened = Instant::now();
    match control.next(5 * SECOND) {
        Next::Message(m) => assert!(m.starts_with("<control compute-id=\"7\""), "{m}"),
        other => panic!("expected <control>: {other:?}"),
    }
    // Its heartbeats arrive; it asks for work, which never comes.
    match control.next(HEARTBEAT_INTERVAL + MARGIN) {
        Next::Message(m) => assert_eq!(m, "<heartbeat/>"),
        other => panic!("expected a heartbeat within {HEARTBEAT_INTERVAL:?}: {other:?}"),
    }
    assert_eq!(
        work.next(5 * SECOND),
        Next::Message("<request/>".into()),
        "the compute asks for work"
    );
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let mut again = None;
    let reconnected = eventually(SILENCE_LIMIT + 2 * MARGIN, || {
        if let Ok((stream, _)) = listener.accept() {
            again = Some((stream, opened.elapsed()));
        }
        again.is_some()
    });
    assert!(reconnected, "the compute did not connect again");
    let (_stream, after) = again.expect("set");
    eprintln!("the compute gave the silent manage up and connected again after {after:?}");
    assert!(
        after >= SILENCE_LIMIT - SECOND && after <= SILENCE_LIMIT + MARGIN,
        "reconnected after {after:?}, limit {SILENCE_LIMIT:?}"
    );
    compute
        .wait_for_stderr("giving it up", SECOND)
        .expect("the compute says why it left");
    // Its old connections are closed.
    assert_eq!(work.next(MARGIN), Next::Closed, "the old work connection");
}
