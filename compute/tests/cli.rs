//! The `compute` binary's command line: output format, exit codes, one-line errors.

use std::process::{Command, Output};

fn compute(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compute"))
        .args(args)
        .output()
        .expect("run compute")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

#[test]
fn scan_prints_perfect_numbers_then_checksum_then_count() {
    for extra in [&[][..], &["--algorithm", "trial", "--threads", "3"][..]] {
        let mut args = vec!["scan", "1", "10000"];
        args.extend_from_slice(extra);
        let output = compute(&args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(
            text(&output.stdout),
            "perfect 6\nperfect 28\nperfect 496\nperfect 8128\nchecksum 32236803\ncount 9999\n"
        );
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("numbers/s"), "{stderr}");
    }
}

#[test]
fn scan_finds_the_fifth_perfect_number() {
    let output = compute(&["scan", "33550000", "33551000", "--algorithm", "sieve"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("perfect 33550336\nchecksum "),
        "{stdout}"
    );
    assert!(stdout.ends_with("\ncount 1000\n"), "{stdout}");
}

#[test]
fn scan_accepts_the_edges_of_u64() {
    let output = compute(&["scan", "18446744073709551615", "18446744073709551615"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stdout), "checksum 0\ncount 0\n");
    let output = compute(&["scan", "1", "2", "--algorithm", "naive", "--threads", "1"]);
    assert_eq!(text(&output.stdout), "checksum 0\ncount 1\n");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: &[&[&str]] = &[
        &["scan", "5", "4"],
        &["scan", "0", "10"],
        &["scan", "abc", "10"],
        &["scan", "1", "1e6"],
        &["scan", "-1", "10"],
        &["scan", "+1", "10"],
        &["scan", " 1", "10"],
        &["scan", "1", ""],
        &["scan", "1", "18446744073709551616"],
        &["scan", "1", "99999999999999999999999"],
        &["scan", "1", "10", "--algorithm", "fast"],
        &["scan", "1", "10", "--algorithm"],
        &["scan", "1", "10", "--threads", "0"],
        &["scan", "1", "10", "--threads", "many"],
        &["scan", "1"],
        &["scan", "1", "10", "11"],
        &["scan", "1", "10", "--frobnicate"],
        &["bench", "extra"],
        &["--threads", "0"],
        &["--algorithm", "quick"],
    ];
    for args in cases {
        let output = compute(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.starts_with("compute: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_is_not_an_error() {
    let output = compute(&["scan", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(text(&output.stdout).contains("--algorithm"));
}
