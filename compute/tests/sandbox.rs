//! The job sandbox, against the real gcc, g++, rustc and python3 of this machine. A language
//! whose compiler is missing (or cannot run in the sandbox) is skipped with a message. The
//! sandbox needs root (namespaces, mounts, cgroups): without it every test skips.
//!
//! The tests run one at a time (a lock): they share two cores.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use compute::sandbox::{run_job, JobOutcome, JobRequest, JobStatus, Language, SandboxConfig};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A sandbox whose job directories go to a jobs root of their own, checked empty (no job
/// directory, no mount) after every job.
struct Bench {
    config: SandboxConfig,
    _lock: MutexGuard<'static, ()>,
}

impl Bench {
    /// None (with a message) when not root.
    fn new(name: &str) -> Option<Bench> {
        if !is_root() {
            eprintln!("SKIPPING: the sandbox needs root");
            return None;
        }
        let lock = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut config = SandboxConfig::new(PathBuf::from(env!("CARGO_BIN_EXE_compute")));
        config.jobs_root = PathBuf::from(format!(
            "/run/sigma-sandbox-test-{}-{name}",
            std::process::id()
        ));
        config.prepare().expect("the sandbox works as root");
        Some(Bench {
            config,
            _lock: lock,
        })
    }

    /// Whether `language` can run here; prints why not.
    fn has(&self, language: Language) -> bool {
        match self.config.check_language(language) {
            Ok(()) => true,
            Err(why) => {
                eprintln!("SKIPPING {language:?}: {why}");
                false
            }
        }
    }

    fn run(&self, request: &JobRequest<'_>) -> JobOutcome {
        let outcome = run_job(request, &self.config);
        let left: Vec<_> = std::fs::read_dir(&self.config.jobs_root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name != "rootfs")
            .collect();
        assert!(left.is_empty(), "job directories left behind: {left:?}");
        let root = self.config.jobs_root.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.lines().any(|line| line.contains(root.as_str())),
            "a job's mount is left behind"
        );
        outcome
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.config.jobs_root.join("rootfs"));
        let _ = std::fs::remove_dir(&self.config.jobs_root);
    }
}

fn job<'a>(language: Language, source: &'a str) -> JobRequest<'a> {
    JobRequest {
        language,
        name: "program",
        source: source.as_bytes(),
        stdin: b"",
        cpu_time: Duration::from_secs(2),
        wall_time: Duration::from_secs(5),
        memory_mb: 256,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A string no other process on the machine has in its command line.
fn marker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("sigma-marker-{name}-{}-{nanos}", std::process::id())
}

/// Processes whose command line contains `needle` (other than this test process).
fn processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if pid != me
            && cmdline
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

/// Waits a little for processes to disappear (a SIGKILLed process takes a moment to go).
fn assert_no_processes_with(needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let found = processes_with(needle);
        if found.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes left behind: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const HELLO_C: &str = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n";

#[test]
fn hello_world_in_each_language() {
    let Some(bench) = Bench::new("hello") else {
        return;
    };
    let programs = [
        (Language::C, HELLO_C),
        (
            Language::Cpp,
            "#include <iostream>\nint main() { std::cout << \"hello\" << std::endl; }\n",
        ),
        (Language::Rust, "fn main() { println!(\"hello\"); }\n"),
        (Language::Python, "print('hello')\n"),
    ];
    for (language, source) in programs {
        if !bench.has(language) {
            continue;
        }
        let outcome = bench.run(&job(language, source));
        assert_eq!(outcome.status, JobStatus::Ok, "{language:?}: {outcome:?}");
        assert_eq!(text(&outcome.stdout.bytes), "hello\n", "{language:?}");
        assert!(!outcome.stdout.truncated);
        assert_eq!(outcome.exit_code, Some(0));
        assert_eq!(outcome.signal, None);
        assert!(outcome.usage.peak_kb > 0, "{language:?}: {outcome:?}");
        assert_eq!(
            outcome.compile_usage.is_some(),
            language != Language::Python,
            "{language:?}"
        );
        eprintln!(
            "{language:?}: run {:?}, compile {:?}",
            outcome.usage, outcome.compile_usage
        );
    }
}

#[test]
fn stdin_reaches_the_program() {
    let Some(bench) = Bench::new("stdin") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    let source = "#include <stdio.h>\nint main(void) { int c; while ((c = getchar()) != EOF) putchar(c == 'a' ? 'b' : c); return 0; }\n";
    let mut request = job(Language::C, source);
    request.stdin = b"banana\0\xff\n";
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");
    assert_eq!(outcome.stdout.bytes, b"bbnbnb\0\xff\n");
}

#[test]
fn compile_error_reports_the_compiler_and_runs_no_stale_binary() {
    let Some(bench) = Bench::new("compile-error") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    // A good job first: its binary must not be what the next job runs.
    let outcome = bench.run(&job(Language::C, HELLO_C));
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");

    let outcome = bench.run(&job(
        Language::C,
        "int main(void) { return undeclared_thing; }\n",
    ));
    assert_eq!(outcome.status, JobStatus::CompileError, "{outcome:?}");
    let compiler = text(&outcome.compiler_output.bytes);
    assert!(compiler.contains("undeclared_thing"), "{compiler}");
    assert!(compiler.contains("error"), "{compiler}");
    assert!(matches!(outcome.exit_code, Some(code) if code != 0));
    assert!(outcome.stdout.bytes.is_empty(), "{outcome:?}");
    assert_eq!(outcome.usage.cpu_ms, 0);
    assert!(outcome.compile_usage.is_some());

    if bench.has(Language::Rust) {
        let outcome = bench.run(&job(Language::Rust, "fn main() { let x: u8 = \"no\"; }\n"));
        assert_eq!(outcome.status, JobStatus::CompileError, "{outcome:?}");
        assert!(text(&outcome.compiler_output.bytes).contains("mismatched types"));
    }
}

#[test]
fn runtime_error_exit_3() {
    let Some(bench) = Bench::new("exit3") else {
        return;
    };
    if bench.has(Language::C) {
        let outcome = bench.run(&job(
            Language::C,
            "#include <stdio.h>\nint main(void) { fputs(\"bad\\n\", stderr); return 3; }\n",
        ));
        assert_eq!(outcome.status, JobStatus::RuntimeError, "{outcome:?}");
        assert_eq!(outcome.exit_code, Some(3));
        assert_eq!(text(&outcome.stderr.bytes), "bad\n");
    }
    if bench.has(Language::Python) {
        let outcome = bench.run(&job(Language::Python, "import sys\nsys.exit(3)\n"));
        assert_eq!(outcome.status, JobStatus::RuntimeError, "{outcome:?}");
        assert_eq!(outcome.exit_code, Some(3));
    }
    if bench.has(Language::C) {
        let outcome = bench.run(&job(
            Language::C,
            "int main(void) { volatile int *p = 0; return *p; }\n",
        ));
        assert_eq!(outcome.status, JobStatus::Signal, "{outcome:?}");
        assert_eq!(outcome.signal, Some(11));
    }
}

#[test]
fn infinite_loop_is_killed_with_every_process_of_the_job() {
    let Some(bench) = Bench::new("loop") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    let marker = marker("loop");
    // Two spinning shells carry the marker; one of them leaves the process group first.
    let source = format!(
        r#"#include <unistd.h>
int main(void) {{
    for (int i = 0; i < 2; i++) {{
        if (fork() == 0) {{
            if (i == 1) setsid();
            execl("/bin/sh", "sh", "-c", "while :; do :; done", "{marker}", (char *)0);
            _exit(1);
        }}
    }}
    for (;;) {{}}
}}
"#
    );
    let mut request = job(Language::C, &source);
    request.cpu_time = Duration::from_secs(1);
    request.wall_time = Duration::from_secs(10);
    let started = Instant::now();
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::TimeLimit, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    // The CPU time of all three processes together ended it (on a host too busy to give the
    // job a second of CPU in ten, the wall clock does).
    let message = outcome.message.clone().unwrap_or_default();
    if message.contains("CPU") {
        assert!(outcome.usage.cpu_ms >= 1000, "{outcome:?}");
    } else {
        assert!(message.contains("wall"), "{outcome:?}");
    }
    assert_no_processes_with(&marker);

    // Blocked, not spinning: the wall-clock limit.
    let source = "#include <unistd.h>\nint main(void) { sleep(100); return 0; }\n";
    let mut request = job(Language::C, source);
    request.wall_time = Duration::from_millis(500);
    let started = Instant::now();
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::TimeLimit, "{outcome:?}");
    assert!(outcome.message.as_deref().unwrap_or("").contains("wall"));
    assert!(outcome.usage.wall_ms >= 500 && outcome.usage.wall_ms < 2000);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn fork_bomb_is_contained_by_the_task_limit() {
    let Some(bench) = Bench::new("fork") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    // Counts the children it gets, then leaves them all paused behind it.
    let counting = r#"#include <stdio.h>
#include <unistd.h>
int main(void) {
    int n = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t p = fork();
        if (p == 0) { pause(); _exit(0); }
        if (p > 0) n++;
    }
    printf("%d\n", n);
    return 0;
}
"#;
    let outcome = bench.run(&job(Language::C, counting));
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");
    let children: u64 = text(&outcome.stdout.bytes).trim().parse().unwrap();
    assert!(
        (1..=bench.config.processes).contains(&children),
        "{children} children"
    );
    assert_no_processes_with("/job/main");

    let bomb = "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n";
    let mut request = job(Language::C, bomb);
    request.cpu_time = Duration::from_secs(1);
    request.wall_time = Duration::from_secs(2);
    let started = Instant::now();
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::TimeLimit, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_no_processes_with("/job/main");
    // The machine is fine.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[test]
fn memory_hog_hits_the_memory_limit() {
    let Some(bench) = Bench::new("memory") else {
        return;
    };
    let hogs = [
        (
            Language::C,
            "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 20); memset(p, 1, 1 << 20); } }\n",
        ),
        (
            Language::Cpp,
            "#include <vector>\nint main() { std::vector<std::vector<char>> v; for (;;) v.emplace_back(1 << 20, 'x'); }\n",
        ),
        (
            Language::Rust,
            "fn main() { let mut v = Vec::new(); loop { v.push(vec![1u8; 1 << 20]); } }\n",
        ),
        (Language::Python, "a = bytearray(10**9)\n"),
    ];
    for (language, source) in hogs {
        if !bench.has(language) {
            continue;
        }
        let mut request = job(language, source);
        request.memory_mb = 64;
        let outcome = bench.run(&request);
        assert_eq!(
            outcome.status,
            JobStatus::MemoryLimit,
            "{language:?}: {outcome:?} stderr {}",
            text(&outcome.stderr.bytes)
        );
        assert!(outcome.usage.peak_kb <= 64 * 1024, "{outcome:?}");
    }
}

#[test]
fn ten_megabytes_of_output_are_cut_at_the_cap() {
    let Some(bench) = Bench::new("output") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    let source = r#"#include <stdio.h>
#include <string.h>
int main(void) {
    static char line[1024];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (int i = 0; i < 10 * 1024; i++) fwrite(line, 1, sizeof line, stdout);
    return 0;
}
"#;
    let outcome = bench.run(&job(Language::C, source));
    assert_eq!(outcome.status, JobStatus::OutputLimit, "{outcome:?}");
    assert!(outcome.stdout.truncated);
    assert_eq!(outcome.stdout.bytes.len(), bench.config.output_cap);
    assert!(outcome
        .stdout
        .bytes
        .iter()
        .all(|&b| b == b'x' || b == b'\n'));
}

#[test]
fn the_client_file_name_is_never_a_path() {
    let Some(bench) = Bench::new("name") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    let target = Path::new("/etc/x.c");
    assert!(!target.exists(), "/etc/x.c exists before the test");
    let mut request = job(Language::C, HELLO_C);
    request.name = "../../etc/x.c";
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");
    assert!(!target.exists());
    assert!(!bench.config.jobs_root.join("x.c").exists());
}

#[test]
fn a_job_sees_only_its_private_root() {
    let Some(bench) = Bench::new("isolation") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    // A host directory a job would like to reach.
    let victim = std::env::temp_dir().join(marker("victim"));
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let source = format!(
        r#"#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/ptrace.h>
static void try_open(const char *label, const char *path, int flags) {{
    int fd = open(path, flags, 0644);
    printf("%s %s\n", label, fd >= 0 ? "allowed" : "denied");
    if (fd >= 0) close(fd);
}}
int main(void) {{
    symlink("/etc/passwd", "passwd");
    try_open("write-passwd", "passwd", O_WRONLY | O_APPEND);
    try_open("create-in-etc", "/etc/sigma-escape", O_WRONLY | O_CREAT);
    try_open("create-in-var-tmp", "/var/tmp/sigma-escape", O_WRONLY | O_CREAT);
    try_open("read-victim", "{victim}/keep.txt", O_RDONLY);
    try_open("write-tmp", "/tmp/mine", O_WRONLY | O_CREAT);
    char buf[4096] = {{0}};
    int fd = open("/etc/passwd", O_RDONLY);
    read(fd, buf, sizeof buf - 1);
    printf("passwd-lines %d\n", (int)(strstr(buf, "daemon:") != NULL));
    printf("pid %d\n", (int)getpid());
    int s = socket(AF_INET, SOCK_STREAM, 0);
    printf("inet-socket %s\n", s >= 0 ? "allowed" : strerror(errno));
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("unix-socket %s\n", u >= 0 ? "allowed" : "denied");
    long t = ptrace(PTRACE_TRACEME, 0, 0, 0);
    printf("ptrace %s\n", t == 0 ? "allowed" : "denied");
    return 0;
}}
"#,
        victim = victim.display()
    );
    let outcome = bench.run(&job(Language::C, &source));
    let _ = std::fs::remove_file("/etc/sigma-escape");
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");
    let report = text(&outcome.stdout.bytes);
    eprintln!("{report}");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd_before);
    for line in [
        "write-passwd denied",
        "create-in-etc denied",
        "create-in-var-tmp denied",
        "read-victim denied",
        "write-tmp allowed",
        // The generated /etc/passwd: root and nobody only.
        "passwd-lines 0",
        // pid 1 is the sandbox's; the program is the first process after it.
        "pid 2",
        "inet-socket Operation not permitted",
        "unix-socket allowed",
        "ptrace denied",
    ] {
        assert!(report.lines().any(|l| l == line), "{line:?} in {report}");
    }
    assert!(!Path::new("/var/tmp/sigma-escape").exists());
    assert!(victim.join("keep.txt").exists());
    std::fs::remove_dir_all(&victim).unwrap();
}

#[test]
fn the_job_tmpfs_is_capped_and_deep_trees_go_without_a_walk() {
    let Some(bench) = Bench::new("tmpfs") else {
        return;
    };
    if !bench.has(Language::C) {
        return;
    }
    // Fill the disk (ENOSPC at the tmpfs cap), then build a directory chain far deeper than any
    // recursive walk's stack would survive; the job ends normally and nothing is left.
    let source = r#"#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
int main(void) {
    static char block[1 << 16];
    long written = 0;
    int error = 0;
    /* Files of 8 MiB each: under the 16 MiB file-size limit, so only the tmpfs cap stops it. */
    for (int i = 0; i < 100 && !error; i++) {
        char name[32];
        snprintf(name, sizeof name, "/tmp/fill%d", i);
        FILE *f = fopen(name, "w");
        if (!f) { error = errno; break; }
        for (int j = 0; j < 128; j++) {
            if (fwrite(block, 1, sizeof block, f) != sizeof block || fflush(f) != 0) { error = errno; break; }
            written += sizeof block;
        }
        fclose(f);
    }
    printf("fill %s after %ld MiB\n", strerror(error), written >> 20);
    for (int i = 0; i < 100; i++) { char name[32]; snprintf(name, sizeof name, "/tmp/fill%d", i); unlink(name); }
    int depth = 0;
    while (depth < 20000 && mkdir("d", 0700) == 0 && chdir("d") == 0) depth++;
    printf("depth %d\n", depth);
    return 0;
}
"#;
    let mut request = job(Language::C, source);
    request.cpu_time = Duration::from_secs(20);
    request.wall_time = Duration::from_secs(60);
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");
    let report = text(&outcome.stdout.bytes);
    eprintln!("{report}");
    assert!(report.contains("fill No space left on device"), "{report}");
    let depth: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("depth "))
        .and_then(|d| d.parse().ok())
        .unwrap();
    assert!(depth >= 10_000, "{report}");
}

#[test]
fn a_memory_limit_too_small_to_load_the_program() {
    let Some(bench) = Bench::new("tiny-memory") else {
        return;
    };
    if !bench.has(Language::Python) {
        return;
    }
    let mut request = job(Language::Python, "print('hi')\n");
    request.memory_mb = 1;
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::MemoryLimit, "{outcome:?}");
}
