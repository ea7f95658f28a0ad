//! Jobs end to end: `report run FILE` through manage to a compute started with `--accept-jobs`,
//! which runs it in the sandbox beside the search. Every wait is bounded; every process is
//! killed when its `Process` drops.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use sigma_tests::cluster::{event_fields, field};
use sigma_tests::jobs::{can_run_jobs, wait_for_job_computes};
use sigma_tests::{eventually, Manage, Process, SIGKILL};

/// A compute measures its timing loop before it joins; on a loaded machine that takes a while.
const JOIN: Duration = Duration::from_secs(60);

/// The `job` events of manage's event log, as (step, compute).
fn job_steps(manage: &Manage) -> Vec<(String, Option<u64>)> {
    manage
        .process
        .stdout_lines()
        .iter()
        .filter_map(|line| {
            let (name, fields) = event_fields(line)?;
            let step: String = field(&fields, "step")?;
            (name == "job").then(|| (step, field(&fields, "compute")))
        })
        .collect()
}

/// A manage with `count` computes that accept jobs, each joined with its control connection;
/// None (the test skips) when not root: the job sandbox needs it.
fn cluster(count: usize) -> Option<(Manage, Vec<Process>)> {
    if !can_run_jobs() {
        return None;
    }
    let manage = Manage::start(&[]);
    let computes: Vec<Process> = (0..count)
        .map(|_| manage.start_compute(&["--threads", "1", "--accept-jobs"]))
        .collect();
    wait_for_job_computes(&manage, count);
    Some((manage, computes))
}

/// Writes `text` to `name` in a fresh folder; returns the folder (kept alive) and the path.
fn source(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write the source");
    (dir, path)
}

fn run(manage: &Manage, file: &Path, extra: &[&str]) -> (ExitStatus, Vec<String>, Vec<String>) {
    manage.report_run(file, extra)
}

fn joined(lines: &[String]) -> String {
    lines.join("\n")
}

/// The compute id report says ran the job (`ran on compute N on HOST`).
fn ran_on(stderr: &[String]) -> u64 {
    let text = joined(stderr);
    let after = text
        .split("ran on compute ")
        .nth(1)
        .unwrap_or_else(|| panic!("no 'ran on compute' in {text:?}"));
    after
        .split_whitespace()
        .next()
        .and_then(|id| id.trim_end_matches(':').parse().ok())
        .unwrap_or_else(|| panic!("bad compute id in {text:?}"))
}

/// Whether the search still makes progress: the tested count grows within a few seconds.
fn assert_search_goes_on(manage: &Manage) {
    let before = manage.status().tested;
    let grew = eventually(Duration::from_secs(30), || {
        manage.try_status().is_some_and(|s| s.tested > before)
    });
    assert!(grew, "the search stopped: tested stays {before}");
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn programs_in_each_language_run_and_pass_their_output_and_exit_code_on() {
    let Some((manage, _computes)) = cluster(1) else {
        return;
    };

    let (_d, c) = source(
        "hello.c",
        "#include <stdio.h>\nint main(void) { puts(\"hello from c\"); return 0; }\n",
    );
    let (status, out, err) = run(&manage, &c, &[]);
    assert_eq!(status.code(), Some(0), "{err:?}");
    assert_eq!(out, ["hello from c"]);
    assert!(joined(&err).contains("ran on compute "), "{err:?}");

    let (_d, cpp) = source(
        "hello.cpp",
        "#include <iostream>\nint main() { std::cout << \"hello from c++\" << std::endl; }\n",
    );
    let (status, out, err) = run(&manage, &cpp, &[]);
    assert_eq!(status.code(), Some(0), "{err:?}");
    assert_eq!(out, ["hello from c++"]);

    let (_d, py) = source(
        "hello.py",
        "import sys\nprint(input().upper())\nsys.stderr.write('to stderr\\n')\n",
    );
    let (_i, input) = source("input.txt", "shout\n");
    let input = input.to_str().unwrap().to_string();
    let (status, out, err) = run(&manage, &py, &["--stdin", &input]);
    assert_eq!(status.code(), Some(0), "{err:?}");
    assert_eq!(out, ["SHOUT"]);
    assert!(err.iter().any(|l| l == "to stderr"), "{err:?}");

    let (_d, rs) = source("hello.rs", "fn main() { println!(\"hello from rust\"); }\n");
    let (status, out, err) = run(&manage, &rs, &["--time-limit", "10"]);
    // rustup's toolchain under /root is bound read-only into the job's root.
    assert_eq!(status.code(), Some(0), "{err:?}");
    assert_eq!(out, ["hello from rust"]);

    // A compile error: exit 1 and the compiler's messages.
    let (_d, bad) = source("bad.c", "int main(void) { return undeclared; }\n");
    let (status, _, err) = run(&manage, &bad, &[]);
    assert_eq!(status.code(), Some(1));
    let text = joined(&err);
    assert!(text.contains("undeclared"), "{text}");
    assert!(text.contains("compile-error"), "{text}");

    // A runtime error: its exit code passes through.
    let (_d, exit7) = source("exit7.py", "import sys\nprint('partial')\nsys.exit(7)\n");
    let (status, out, err) = run(&manage, &exit7, &[]);
    assert_eq!(status.code(), Some(7), "{err:?}");
    assert_eq!(out, ["partial"]);

    // 10 MB of output: truncated and flagged, and report says so.
    let (_d, big) = source("big.py", "import sys\nsys.stdout.write('x' * 10_000_000)\n");
    let (status, out, err) = run(&manage, &big, &[]);
    assert_ne!(status.code(), Some(0));
    let text = joined(&err);
    assert!(text.contains("stdout was truncated"), "{text}");
    let printed: usize = out.iter().map(String::len).sum();
    assert!(
        (1..10_000_000).contains(&printed),
        "{printed} bytes printed"
    );

    // A file name that climbs out of its folder: only a name, never a path.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let sneaky = dir.path().join("a/b/../../etc/x.c");
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(
        &sneaky,
        "#include <stdio.h>\nint main(void) { puts(\"fine\"); return 0; }\n",
    )
    .unwrap();
    let before = Path::new("/etc/x.c").exists();
    let (status, out, err) = run(&manage, &sneaky, &[]);
    assert_eq!(status.code(), Some(0), "{err:?}");
    assert_eq!(out, ["fine"]);
    assert_eq!(Path::new("/etc/x.c").exists(), before);

    // A file whose language cannot be told: a usage error.
    let (_d, txt) = source("notes.txt", "hello");
    let (status, _, err) = run(&manage, &txt, &[]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(err.len(), 1, "{err:?}");
    assert_search_goes_on(&manage);
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn limits_are_contained_and_the_search_goes_on() {
    let Some((manage, _computes)) = cluster(1) else {
        return;
    };

    let (_d, forever) = source("forever.c", "int main(void) { for (;;) {} }\n");
    let (status, _, err) = run(&manage, &forever, &["--time-limit", "1"]);
    assert_eq!(status.code(), Some(124), "{err:?}");
    assert!(joined(&err).contains("time limit"), "{err:?}");
    assert_search_goes_on(&manage);

    let (_d, bomb) = source(
        "bomb.c",
        "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n",
    );
    let (status, _, err) = run(&manage, &bomb, &["--time-limit", "2"]);
    assert_ne!(status.code(), Some(0), "{err:?}");
    assert_search_goes_on(&manage);

    let (_d, hog) = source(
        "hog.py",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))\n",
    );
    let (status, _, err) = run(
        &manage,
        &hog,
        &["--memory-limit", "64", "--time-limit", "5"],
    );
    assert_ne!(status.code(), Some(0), "{err:?}");
    assert!(joined(&err).contains("memory"), "{err:?}");
    assert_search_goes_on(&manage);
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn round_robin_alternates_between_two_computes() {
    let Some((manage, _computes)) = cluster(2) else {
        return;
    };
    let (_d, hello) = source("hi.py", "print('hi')\n");
    let mut ran = Vec::new();
    for _ in 0..4 {
        let (status, out, err) = run(&manage, &hello, &["--schedule", "round-robin"]);
        assert_eq!(status.code(), Some(0), "{err:?}");
        assert_eq!(out, ["hi"]);
        ran.push(ran_on(&err));
    }
    assert_ne!(ran[0], ran[1], "{ran:?}");
    assert_eq!(ran[0], ran[2], "{ran:?}");
    assert_eq!(ran[1], ran[3], "{ran:?}");
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_compute_killed_mid_job_fails_over_or_fails_cleanly() {
    let Some((manage, computes)) = cluster(2) else {
        return;
    };
    let ids: Vec<u64> = computes
        .iter()
        .map(|c| sigma_tests::cluster::compute_id(c, JOIN))
        .collect();
    let (_d, slow) = source("slow.py", "import time\ntime.sleep(3)\nprint('done')\n");
    let address = manage.address_arg();
    let token = manage.token_file();
    let mut report = Process::start(
        "report",
        &[
            &address,
            "--token-file",
            token.to_str().unwrap(),
            "run",
            slow.to_str().unwrap(),
            "--time-limit",
            "10",
        ],
    );
    let mut target = None;
    let sent = eventually(Duration::from_secs(20), || {
        target = job_steps(&manage)
            .into_iter()
            .find(|(step, _)| step == "sent")
            .and_then(|(_, compute)| compute);
        target.is_some()
    });
    assert!(sent, "the job was not sent");
    let target = target.unwrap();
    let index = ids
        .iter()
        .position(|&id| id == target)
        .expect("a known compute");
    std::thread::sleep(Duration::from_millis(500));
    let _cleanup = JobFoldersOf(computes[index].pid());
    computes[index].signal(SIGKILL);
    let status = report
        .wait_exit(Duration::from_secs(40))
        .expect("report finishes");
    let err = joined(&report.stderr_lines());
    if status.code() == Some(0) {
        assert_eq!(report.stdout_lines(), ["done"]);
        assert_eq!(ran_on(&report.stderr_lines()), ids[1 - index], "{err}");
        assert!(
            job_steps(&manage)
                .iter()
                .any(|(step, _)| step == "failed-over"),
            "no failover logged"
        );
    } else {
        assert!(err.contains("internal-error"), "{err}");
        assert!(err.contains("went away"), "{err}");
    }
}

/// Removes, when dropped, what a compute killed mid-job leaves for the next compute's start to
/// clean: its job directories' tmpfs mounts (detached, not walked) under the jobs root, and its
/// empty cgroups. So the test leaves nothing behind.
struct JobFoldersOf(u32);

impl Drop for JobFoldersOf {
    fn drop(&mut self) {
        let prefix = format!("/run/sigma-compute/job-{}-", self.0);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|point| point.starts_with(&prefix))
        {
            let _ = std::process::Command::new("umount")
                .args(["-l", point])
                .status();
            let _ = std::fs::remove_dir(point);
        }
        if let Ok(entries) = std::fs::read_dir("/run/sigma-compute") {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_dir(&path);
                }
            }
        }
        let _ = std::process::Command::new("find")
            .args(["/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-path"])
            .arg(format!("*/sigma-jobs/{}-*", self.0))
            .args(["-exec", "rmdir", "{}", "+"])
            .status();
    }
}

#[test]
fn a_wrong_token_is_refused_and_no_compute_means_busy() {
    let manage = Manage::start(&[]);
    let (_d, hello) = source("hi.py", "print('hi')\n");
    // No compute accepts jobs (one searches without --accept-jobs): busy.
    let _plain = manage.start_compute(&["--threads", "1"]);
    let (status, _, err) = run(&manage, &hello, &[]);
    assert_ne!(status.code(), Some(0));
    assert!(joined(&err).contains("busy"), "{err:?}");

    let (_t, wrong) = source("token", &"ab".repeat(32));
    let (status, err) = report_with_token(&manage.address_arg(), &wrong, &["run", utf8(&hello)]);
    assert_ne!(status.code(), Some(0));
    assert!(err.contains("unauthorized"), "{err}");
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Runs `report ADDRESS --token-file TOKEN ARGS…` and waits (bounded) for it: its exit status
/// and its stderr.
fn report_with_token(address: &str, token: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut all = vec![address, "--token-file", utf8(token)];
    all.extend_from_slice(args);
    let mut report = Process::start("report", &all);
    let status = report
        .wait_exit(Duration::from_secs(20))
        .expect("report finishes");
    (status, joined(&report.stderr_lines()))
}

#[test]
fn the_submission_token_submits_jobs_and_nothing_else() {
    let manage = Manage::start(&[]);
    let submit = std::fs::read_to_string(manage.submit_token_file()).expect("a submission token");
    let cluster = std::fs::read_to_string(manage.token_file()).expect("a cluster token");
    assert_ne!(submit.trim(), cluster.trim(), "two rights, two tokens");
    let mode = std::fs::metadata(manage.submit_token_file())
        .expect("the submission token's file")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // It passes the gate of run: with no compute accepting jobs, the answer is busy, which
    // manage only gives past the token check.
    let (_d, hello) = source("hi.py", "print('hi')\n");
    let (status, _, err) = run(&manage, &hello, &[]);
    assert_ne!(status.code(), Some(0));
    assert!(joined(&err).contains("busy"), "{err:?}");

    // It is no off switch: -k with it is refused and the cluster carries on.
    let (status, err) =
        report_with_token(&manage.address_arg(), &manage.submit_token_file(), &["-k"]);
    assert_eq!(status.code(), Some(1));
    assert!(err.contains("unauthorized"), "{err}");
    let (status, out, _) = manage.report(&[]);
    assert!(status.success(), "manage went down after a refused kill");
    assert!(!out.is_empty());
    // The cluster token still stops it.
    let (status, out, err) = manage.report(&["-k"]);
    assert!(status.success(), "{out:?} {err:?}");
}

#[test]
fn report_proves_its_token_before_it_sends_the_source_once() {
    use std::io::{Read, Write};
    // A stand-in for manage that records what report sends: it answers the challenge request
    // with a nonce and the run with an error, then reads until report hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let fake = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("report connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut seen = Vec::new();
        // Reads into `seen` until it holds `end`; false when report hung up first.
        let read_until = |stream: &mut std::net::TcpStream, seen: &mut Vec<u8>, end: &[u8]| {
            let mut chunk = [0u8; 65536];
            while !seen.windows(end.len()).any(|w| w == end) {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
            true
        };
        assert!(read_until(&mut stream, &mut seen, b"<challenge-request/>"));
        stream
            .write_all(b"<challenge nonce=\"00112233445566778899aabbccddeeff\"/>")
            .expect("send the challenge");
        read_until(&mut stream, &mut seen, b"</run>");
        stream
            .write_all(b"<error code=\"unauthorized\" message=\"test\"/>")
            .expect("send the refusal");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        seen.extend_from_slice(&rest);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let (_d, hello) = source("hi.py", "print('hi')\n");
    let (_t, token) = source("submit-token", &"ab".repeat(32));
    let (status, _) = report_with_token(&address, &token, &["run", utf8(&hello)]);
    assert_eq!(status.code(), Some(1));
    let sent = fake.join().expect("the stand-in manage");
    assert!(sent.starts_with("<challenge-request/>"), "{sent}");
    assert_eq!(
        sent.matches("<run ").count(),
        1,
        "the source went twice: {sent}"
    );
    assert!(
        sent.contains(" mac=\""),
        "the run carries no answer: {sent}"
    );
}
