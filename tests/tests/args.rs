//! Bad command lines: manage and report print one clear line on stderr and exit non-zero (2 for
//! a usage error, 1 for a failure to start), never a panic; `--help` prints to stdout and exits 0.
//! (compute's command line is tested in compute/tests; its address and suggestions here too.)

use std::net::TcpListener;
use std::time::Duration;

use sigma_tests::{Manage, Process};

/// Runs `program args` and returns its exit code and its stdout and stderr lines.
fn run(program: &str, args: &[&str]) -> (i32, Vec<String>, Vec<String>) {
    let mut process = Process::start(program, args);
    let status = process
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("{program} {args:?} still runs after 20 s"));
    let code = status
        .code()
        .unwrap_or_else(|| panic!("{program} {args:?} ended by a signal: {status}"));
    (code, process.stdout_lines(), process.stderr_lines())
}

/// `program args` exits with `code` and prints exactly one line, on stderr, that names the
/// program and contains `fragment`.
fn assert_one_line_error(program: &str, args: &[&str], code: i32, fragment: &str) {
    let (got, stdout, stderr) = run(program, args);
    let lines: Vec<&String> = stderr.iter().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        got, code,
        "{program} {args:?}: exit code; stderr {stderr:?}"
    );
    assert!(stdout.is_empty(), "{program} {args:?} printed {stdout:?}");
    assert_eq!(
        lines.len(),
        1,
        "{program} {args:?}: one line on stderr, not {stderr:?}"
    );
    let line = lines[0];
    assert!(
        line.starts_with(&format!("{program}: ")) && line.contains(fragment),
        "{program} {args:?}: {line:?} should start with `{program}: ` and say {fragment:?}"
    );
    assert!(!line.contains("panicked"), "{line}");
}

#[test]
fn manage_refuses_bad_arguments_in_one_line() {
    let state = tempfile::tempdir().expect("a temporary folder");
    let state = state.path().join("state");
    let state = state.to_str().expect("UTF-8 path");
    let cases: &[(&[&str], &str)] = &[
        (&["--start", "10", "--until", "5"], "below --start"),
        (&["--start", "0"], "at least 1"),
        (&["--start", "01"], "not a plain decimal number"),
        (&["--start", "-1"], "-1"),
        (
            &["--until", "18446744073709551615"],
            "at most 18446744073709551614",
        ),
        (&["--until", "18446744073709551616"], "larger than"),
        (
            &["--target-seconds", "0"],
            "--target-seconds takes more than 0 and at most 86400 seconds, not 0",
        ),
        (&["--target-seconds", "nan"], "--target-seconds"),
        (&["--target-seconds", "fast"], "--target-seconds"),
        (&["--shutdown-grace", "1e9"], "--shutdown-grace"),
        (&["--listen", "nonsense"], "--listen"),
        (&["--local", "x"], "--local"),
        (&["--bogus"], "--bogus"),
        (&["--listn", "x"], "(a similar argument exists: '--listen')"),
        (&["extra"], "extra"),
    ];
    for (args, fragment) in cases {
        let mut all = vec!["--listen", "127.0.0.1:0", "--state", state];
        if args.first() == Some(&"--listen") {
            all.drain(..2);
        }
        all.extend_from_slice(args);
        assert_one_line_error("manage", &all, 2, fragment);
    }
}

#[test]
fn manage_that_cannot_start_says_why_in_one_line() {
    let running = Manage::start(&[]);
    let taken = running.address_arg();
    let state = tempfile::tempdir().expect("a temporary folder");
    let state_arg = state.path().join("state");
    let state_arg = state_arg.to_str().expect("UTF-8 path");
    assert_one_line_error(
        "manage",
        &["--listen", &taken, "--state", state_arg],
        1,
        "cannot listen on",
    );
    // A file where the state folder should be.
    let file = state.path().join("a-file");
    std::fs::write(&file, b"not a folder").expect("a file");
    assert_one_line_error(
        "manage",
        &[
            "--listen",
            "127.0.0.1:0",
            "--state",
            file.to_str().expect("UTF-8 path"),
        ],
        1,
        "a-file",
    );
}

#[test]
fn manage_help_is_clear() {
    let (code, stdout, stderr) = run("manage", &["--help"]);
    assert_eq!(code, 0, "{stderr:?}");
    let text = stdout.join("\n");
    for word in [
        "Usage: manage",
        "--listen",
        "--start",
        "--until",
        "--target-seconds",
        "--exit-when-done",
        "--state",
        "--shutdown-grace",
    ] {
        assert!(
            text.contains(word),
            "manage --help mentions {word}:\n{text}"
        );
    }
}

#[test]
fn report_refuses_bad_arguments_in_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "--bogus"),
        (&["-k", "--xml"], "cannot be used with"),
        (&["--xml", "--watch"], "cannot be used with"),
        (&["--watch", "x"], "--watch"),
        // Checked before connecting: nothing listens on the default address here.
        (&["--watch", "0"], "--watch takes 0.1 to 3600 seconds"),
        (&["a", "b"], "'b'"),
        (&["--kil"], "(a similar argument exists: '--kill')"),
    ];
    for (args, fragment) in cases {
        assert_one_line_error("report", args, 2, fragment);
    }
}

#[test]
fn report_without_a_manage_says_so_in_one_line() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address").port()
    };
    let closed = format!("127.0.0.1:{port}");
    assert_one_line_error("report", &[&closed], 1, "cannot reach manage");
    assert_one_line_error("report", &["-k", &closed], 1, "cannot reach manage");
    // A bad port is a usage error, in report and compute as in manage.
    assert_one_line_error("report", &["127.0.0.1:99999"], 2, "from 1 to 65535");
    assert_one_line_error("compute", &["127.0.0.1:99999"], 2, "from 1 to 65535");
    assert_one_line_error(
        "compute",
        &["--priority", "idel"],
        2,
        "(a similar value exists: 'idle')",
    );
}

#[test]
fn report_help_is_clear() {
    let (code, stdout, stderr) = run("report", &["--help"]);
    assert_eq!(code, 0, "{stderr:?}");
    let text = stdout.join("\n");
    for word in ["Usage: report", "HOST[:PORT]", "--kill", "--xml", "--watch"] {
        assert!(
            text.contains(word),
            "report --help mentions {word}:\n{text}"
        );
    }
}

#[test]
fn manage_with_a_bad_token_file_creates_no_state() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let state = folder.path().join("state");
    let missing = folder.path().join("no-such-token");
    assert_one_line_error(
        "manage",
        &[
            "--listen",
            "127.0.0.1:0",
            "--state",
            state.to_str().expect("UTF-8 path"),
            "--token-file",
            missing.to_str().expect("UTF-8 path"),
        ],
        1,
        "no-such-token",
    );
    assert!(!state.exists(), "a failed start left {}", state.display());
}

#[test]
fn manage_with_an_unwritable_state_folder_says_the_os_reason() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let folder = tempfile::tempdir().expect("a temporary folder");
    let state = folder.path().join("state");
    std::fs::create_dir(&state).expect("the state folder");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o555))
        .expect("read-only permissions");
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755))
        .expect("a folder others can enter");
    // Root writes anywhere: as root, manage runs as nobody (65534), who cannot write there.
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let state_arg = state.to_str().expect("UTF-8 path");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--state",
        state_arg,
        "--http",
        "off",
    ];
    let mut manage = Process::start_with("manage", &args, |command| {
        if root {
            command.uid(65534).gid(65534);
        }
    });
    let status = manage
        .wait_exit(Duration::from_secs(20))
        .expect("manage exits within 20 s");
    let stderr = manage.stderr_lines();
    assert_eq!(status.code(), Some(1), "{stderr:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].starts_with("manage: cannot create the state ")
            && stderr[0].contains("Permission denied"),
        "{stderr:?}"
    );
}
