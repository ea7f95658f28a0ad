//! The job sandbox, against the real gcc, g++, rustc and python3 of this machine. A language
//! whose compiler is missing (or cannot be run by the job user) is skipped with a message.
//!
//! The tests run one at a time (a lock): jobs share the job user's process count, and two cores.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use compute::sandbox::{run_job, JobOutcome, JobRequest, JobStatus, Language, SandboxConfig};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A sandbox whose job directories go to a root of their own, checked empty at the end.
struct Bench {
    config: SandboxConfig,
    _lock: MutexGuard<'static, ()>,
}

impl Bench {
    fn new(name: &str) -> Bench {
        let lock = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let root =
            std::env::temp_dir().join(format!("sigma-sandbox-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir(&root).unwrap();
        // The job user needs to pass through the root to reach its own directory.
        set_mode(&root, 0o711);
        let mut config = SandboxConfig::new(PathBuf::from(env!("CARGO_BIN_EXE_compute")));
        config.work_root = root;
        Bench {
            config,
            _lock: lock,
        }
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
        let left: Vec<_> = std::fs::read_dir(&self.config.work_root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "job directories left behind: {left:?}");
        outcome
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.config.work_root);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
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
    let bench = Bench::new("hello");
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
    let bench = Bench::new("stdin");
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
    let bench = Bench::new("compile-error");
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
    let bench = Bench::new("exit3");
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
fn infinite_loop_is_killed_with_its_whole_process_group() {
    let bench = Bench::new("loop");
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
    request.wall_time = Duration::from_secs(3);
    let started = Instant::now();
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::TimeLimit, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(outcome.usage.cpu_ms >= 1000, "{outcome:?}");
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
fn fork_bomb_is_contained_by_the_process_limit() {
    let bench = Bench::new("fork");
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
    assert_no_processes_with("sigma-job-");

    let bomb = "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n";
    let mut request = job(Language::C, bomb);
    request.cpu_time = Duration::from_secs(1);
    request.wall_time = Duration::from_secs(2);
    let started = Instant::now();
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::TimeLimit, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_no_processes_with("sigma-job-");
    // The machine is fine.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[test]
fn memory_hog_hits_the_memory_limit() {
    let bench = Bench::new("memory");
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
    let bench = Bench::new("output");
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
    let bench = Bench::new("name");
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
    let parent = bench.config.work_root.parent().unwrap();
    assert!(!parent.join("x.c").exists());
}

#[test]
fn symlinks_and_what_a_job_can_reach_outside_its_directory() {
    let bench = Bench::new("symlink");
    if !bench.has(Language::C) {
        return;
    }
    // A world-readable directory the job links to: the cleanup must not follow the link.
    let victim = std::env::temp_dir().join(marker("victim"));
    std::fs::create_dir(&victim).unwrap();
    set_mode(&victim, 0o755);
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    let passwd_before = std::fs::read("/etc/passwd").unwrap();
    let source = format!(
        r#"#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
static void try_open(const char *label, const char *path, int flags) {{
    int fd = open(path, flags, 0644);
    printf("%s %s\n", label, fd >= 0 ? "allowed" : "denied");
    if (fd >= 0) close(fd);
}}
int main(void) {{
    symlink("/etc/passwd", "passwd");
    symlink("/", "root");
    symlink("{victim}", "victim");
    try_open("write-passwd", "passwd", O_WRONLY | O_APPEND);
    try_open("read-passwd", "passwd", O_RDONLY);
    try_open("create-in-etc", "root/etc/sigma-escape", O_WRONLY | O_CREAT);
    try_open("read-root-home", "/root/.", O_RDONLY | O_DIRECTORY);
    try_open("read-victim", "victim/keep.txt", O_RDONLY);
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
    assert!(report.contains("write-passwd denied"), "{report}");
    assert!(report.contains("create-in-etc denied"), "{report}");
    // Not stopped, and documented: world-readable files are readable.
    assert!(report.contains("read-passwd allowed"), "{report}");
    assert!(report.contains("read-victim allowed"), "{report}");
    if is_root() {
        // The job runs as nobody: root's 0700 home is closed to it.
        let home_closed = std::fs::metadata("/root")
            .map(|meta| {
                use std::os::unix::fs::PermissionsExt;
                meta.permissions().mode() & 0o005 == 0
            })
            .unwrap_or(false);
        if home_closed {
            assert!(report.contains("read-root-home denied"), "{report}");
        }
    }
    // The cleanup removed the link, not what it points to.
    assert!(victim.join("keep.txt").exists());
    std::fs::remove_dir_all(&victim).unwrap();
}

/// On this kind of machine rustc lives under root's 0700 home (rustup), out of the job user's
/// reach, so the Rust cases above are skipped. This test still exercises the Rust pipeline, as
/// root: only when run as root and the normal check fails. (Never configure a real compute so.)
#[test]
fn rust_jobs_as_root_when_the_toolchain_is_private() {
    let mut bench = Bench::new("rust-root");
    if bench.config.toolchain.rustc.is_none() {
        eprintln!("SKIPPING Rust as root: no rustc");
        return;
    }
    if !is_root() || bench.config.check_language(Language::Rust).is_ok() {
        eprintln!(
            "SKIPPING Rust as root: not needed (not root, or rustc reachable by the job user)"
        );
        return;
    }
    eprintln!("Rust jobs run as root here: the job user cannot reach rustc");
    bench.config.job_user = (0, 0);
    bench.config.check_language(Language::Rust).unwrap();

    let outcome = bench.run(&job(Language::Rust, "fn main() { println!(\"hello\"); }\n"));
    assert_eq!(outcome.status, JobStatus::Ok, "{outcome:?}");
    assert_eq!(text(&outcome.stdout.bytes), "hello\n");

    let outcome = bench.run(&job(Language::Rust, "fn main() { let x: u8 = \"no\"; }\n"));
    assert_eq!(outcome.status, JobStatus::CompileError, "{outcome:?}");
    assert!(text(&outcome.compiler_output.bytes).contains("mismatched types"));

    let outcome = bench.run(&job(
        Language::Rust,
        "fn main() { std::process::exit(3) }\n",
    ));
    assert_eq!(outcome.status, JobStatus::RuntimeError, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(3));

    let mut request = job(
        Language::Rust,
        "fn main() { let mut v = Vec::new(); loop { v.push(vec![1u8; 1 << 20]); } }\n",
    );
    request.memory_mb = 64;
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::MemoryLimit, "{outcome:?}");
}

#[test]
fn a_memory_limit_too_small_to_load_the_program() {
    let bench = Bench::new("tiny-memory");
    if !bench.has(Language::Python) {
        return;
    }
    let mut request = job(Language::Python, "print('hi')\n");
    request.memory_mb = 1;
    let outcome = bench.run(&request);
    assert_eq!(outcome.status, JobStatus::MemoryLimit, "{outcome:?}");
}
