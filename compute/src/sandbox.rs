//! Compile and run one program in a sandbox, beside the search: [`run_job`].
//!
//! No networking here: the caller (the compute's client) turns a `<job>` into a [`JobRequest`]
//! and the [`JobOutcome`] into a `<job-result>`.
//!
//! # How a job runs
//!
//! 1. A fresh directory `sigma-job-<pid>-<n>-<nanos>` is made under
//!    [`SandboxConfig::work_root`] with `mkdir` mode 0700 (it fails if the name exists, so no
//!    planted directory or symlink is used). When compute runs as root, the directory is then
//!    given to the job user ([`SandboxConfig::job_user`], by default `nobody`).
//! 2. The source is written as `main.c`, `main.cpp`, `main.rs` or `main.py`, and the input as
//!    `stdin`, each with `create_new` (O_CREAT|O_EXCL: never through an existing file or
//!    symlink). The client's file name ([`JobRequest::name`]) is never used as a path.
//! 3. The compiler (gcc, g++, rustc; none for Python) runs as one sandboxed stage, the program
//!    as a second. A stage is run by the compute binary itself in two hidden helper modes (see
//!    [`helper_main`]): a supervisor, which stays compute's user, and an exec stage, which std
//!    starts as the job user (uid, gid, no supplementary groups) in a new process group, in the
//!    job directory, with an environment holding only `PATH` (fixed, system directories) and
//!    `TMPDIR` (the job directory); it sets its own resource limits and execs the program. So
//!    no `unsafe` code is needed: nothing runs between `fork` and `exec` but std.
//! 4. Limits of each stage: RLIMIT_CPU (the CPU limit rounded up to whole seconds; SIGXCPU,
//!    then SIGKILL one second later), RLIMIT_AS (address space), RLIMIT_FSIZE (largest file
//!    written), RLIMIT_NPROC (tasks: see below), RLIMIT_NOFILE, RLIMIT_CORE = 0; a wall-clock
//!    deadline kept by the supervisor, which then SIGKILLs the whole process group; an output cap
//!    per stream kept here: past it the output is dropped (`truncated`) and the supervisor is
//!    asked to kill the job. A job that ends after more CPU time than its limit is counted a
//!    `time-limit` even if the rounded-up rlimit let it finish.
//! 5. When the program ends the supervisor kills what is left of its process group, then (being
//!    a child subreaper, it inherits orphans) kills and reaps every remaining descendant, even
//!    those that left the group with `setsid`. The directory is then removed (std's
//!    `remove_dir_all` does not follow symlinks).
//!
//! # Measurements
//!
//! CPU time and peak memory come from the supervisor's `getrusage(RUSAGE_CHILDREN)` after it has
//! reaped the program and all its descendants; it has no other children, so the figures are the
//! job's alone: CPU is user + system of every process of the job; peak memory (`ru_maxrss`) is
//! the largest resident set of any one of its processes. Linux carries `ru_maxrss` across
//! `exec`, so it includes the exec helper's own resident set just before the exec (a few MiB:
//! about 4 MiB for a debug build of compute): `peak_kb` is never below that. Wall time is measured by the
//! supervisor from the spawn of the exec stage to the program's end.
//!
//! # Status
//!
//! In this order: the output passed its cap: `output-limit`; killed at the wall-clock deadline,
//! killed by SIGXCPU, or CPU time over the limit: `time-limit`; killed by SIGXFSZ (a file over the
//! size limit): `output-limit`; **memory-limit heuristic**: it ended badly (non-zero exit or a
//! signal) and either its peak resident set reached 80% of the limit, or its stderr holds an
//! allocation-failure message (`memory allocation of` from Rust, `std::bad_alloc` from C++,
//! `MemoryError` from Python, `Cannot allocate memory`, `out of memory`). RLIMIT_AS makes
//! allocations fail rather than killing, so a C program that dereferences a NULL from `malloc`
//! without touching much memory first ends as `signal` 11, not `memory-limit`; and a program
//! that crashes for another reason after using most of its memory is counted `memory-limit`.
//! Then a signal: `signal`; a non-zero exit: `runtime-error`; else `ok`. A compiler that fails,
//! for whatever reason (including its own limits), gives `compile-error`; a compiler that cannot
//! be started, or a sandbox failure, gives `internal-error`.
//!
//! # What the sandbox stops and what it does not
//!
//! It is a resource sandbox with a change of user, not an isolation sandbox: there are no
//! namespaces, no chroot, no seccomp filter.
//!
//! Stopped (when compute runs as root, so that the job runs as another user):
//! * Using more than its limits: CPU time, wall-clock time (the whole process group is killed,
//!   and then every descendant, even one that called `setsid`), address space, file size, open
//!   files, processes (a fork bomb stops at the process limit), output (the rest is dropped).
//! * Writing anything its user cannot write: compute's files, `/etc`, other users' homes; a
//!   symlink planted in the job directory gains it nothing, because every path the sandbox
//!   itself opens is created with O_EXCL and the cleanup does not follow symlinks. The client's
//!   file name never becomes a path.
//! * Reading files that are not readable by its user (0600 files of root, anything under a 0700
//!   directory such as `/root`), signalling or tracing compute or the supervisor (they run as
//!   another user), keeping root's supplementary groups, inheriting compute's environment or
//!   open files (everything compute opens is close-on-exec), dumping core.
//!
//! Not stopped:
//! * **Reading every world-readable file** on the host: `/etc/passwd`, `/proc`, other users'
//!   world-readable files, source code and binaries. Do not keep secrets in world-readable
//!   files on a compute host.
//! * **Writing in world-writable directories**: `/tmp`, `/var/tmp`, `/dev/shm`. Files left there
//!   survive the job (each at most the file-size limit; their number is not limited) and other
//!   jobs can read them.
//! * **The network**: the job can open sockets, connect anywhere the host can, and listen on
//!   high ports (for as long as it runs).
//! * **Other processes of the job user**: jobs run as one user (by default `nobody`), so a job can
//!   signal, and read the world-readable `/proc` entries of, another job running at the same time
//!   (another compute on the same host) or any daemon running as `nobody`. Give each compute its
//!   own otherwise unused uid when several share a host.
//! * **Shared process count**: RLIMIT_NPROC counts every task of the job user on the host, so the
//!   exec stage sets it to the tasks that user has now plus the job's allowance; processes of the
//!   same user started elsewhere eat into it.
//! * **Memory that is not address space**: page cache, kernel memory, pipes and sockets are not
//!   limited per job (no cgroup).
//! * **CPU share**: the job competes with the search threads at the same priority.
//! * **Without root** the job runs as compute's own user: none of the "stopped" items that rest
//!   on the change of user hold (it can read and write compute's files, signal or trace compute
//!   and the supervisor, and forge its own CPU and memory figures). Only the limits remain.

#![forbid(unsafe_code)]

mod helper;

use std::ffi::OsString;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use helper::helper_main;
pub use xmlwire::protocol::{JobStatus, Language};

/// The `PATH` a job sees, and where [`Toolchain::detect`] looks first.
pub const JOB_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// One program to compile and run.
#[derive(Clone, Copy, Debug)]
pub struct JobRequest<'a> {
    /// Its language.
    pub language: Language,
    /// The client's file name. Never used as a path (the source is always written as
    /// `main.c`, `main.cpp`, `main.rs` or `main.py`); kept for messages only.
    pub name: &'a str,
    /// The source code.
    pub source: &'a [u8],
    /// Its standard input (empty: none).
    pub stdin: &'a [u8],
    /// CPU time it may use (all its processes together are measured; each process is limited).
    pub cpu_time: Duration,
    /// Wall-clock time it may run.
    pub wall_time: Duration,
    /// Address space it may map, in MiB (per process).
    pub memory_mb: u64,
}

/// Limits of the compile stage (fixed by the compute, not by the client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageLimits {
    /// CPU time.
    pub cpu_time: Duration,
    /// Wall-clock time.
    pub wall_time: Duration,
    /// Address space per process, MiB.
    pub memory_mb: u64,
    /// Largest file, MiB.
    pub file_size_mb: u64,
    /// Tasks (processes and threads) the stage may add to its user's.
    pub processes: u64,
    /// Open files per process.
    pub open_files: u64,
}

/// Where the compilers and the interpreter are. `None`: that language is not available.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toolchain {
    /// C compiler.
    pub gcc: Option<PathBuf>,
    /// C++ compiler.
    pub gxx: Option<PathBuf>,
    /// Rust compiler: the real one, not a rustup proxy (the job's environment has no
    /// `RUSTUP_HOME`).
    pub rustc: Option<PathBuf>,
    /// Python 3 interpreter.
    pub python3: Option<PathBuf>,
}

impl Toolchain {
    /// Looks for `gcc`, `g++`, `rustc` and `python3` in [`JOB_PATH`]; for a `rustc` not found
    /// there, asks the `rustc` on compute's own `PATH` for its sysroot (rustup installs).
    /// Whether the job user can run what was found is checked by
    /// [`SandboxConfig::check_language`].
    pub fn detect() -> Toolchain {
        let rustc = find_in(JOB_PATH, "rustc").or_else(|| {
            let output = Command::new("rustc")
                .args(["--print", "sysroot"])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            if !output.status.success() {
                return None;
            }
            let sysroot = String::from_utf8(output.stdout).ok()?;
            let rustc = Path::new(sysroot.trim()).join("bin/rustc");
            rustc.is_file().then_some(rustc)
        });
        Toolchain {
            gcc: find_in(JOB_PATH, "gcc"),
            gxx: find_in(JOB_PATH, "g++"),
            rustc,
            python3: find_in(JOB_PATH, "python3"),
        }
    }

    /// The compiler (or interpreter) of `language`.
    pub fn program(&self, language: Language) -> Option<&Path> {
        match language {
            Language::C => self.gcc.as_deref(),
            Language::Cpp => self.gxx.as_deref(),
            Language::Rust => self.rustc.as_deref(),
            Language::Python => self.python3.as_deref(),
        }
    }
}

fn find_in(path: &str, name: &str) -> Option<PathBuf> {
    path.split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

/// How the sandbox runs jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The compute binary, run as `HELPER sandbox-supervise …` (see [`helper_main`]).
    pub helper: PathBuf,
    /// Where job directories are made. The job user needs search (x) permission on it.
    pub work_root: PathBuf,
    /// (uid, gid) the job runs as when compute runs as root; ignored otherwise (the job then
    /// runs as compute's user).
    pub job_user: (u32, u32),
    /// Compilers and interpreter.
    pub toolchain: Toolchain,
    /// Limits of the compile stage.
    pub compile: StageLimits,
    /// Largest file the program may write, MiB.
    pub file_size_mb: u64,
    /// Tasks (processes and threads) the program may add to its user's.
    pub processes: u64,
    /// Open files per process of the program.
    pub open_files: u64,
    /// Bytes kept of each of stdout, stderr and the compiler's output.
    pub output_cap: usize,
}

/// Time the supervisor gets past a stage's wall limit before run_job kills it.
const BACKSTOP: Duration = Duration::from_secs(5);
/// Time the output pipes get to close once the supervisor has reported.
const DRAIN: Duration = Duration::from_secs(1);

impl SandboxConfig {
    /// Defaults: jobs in the system temporary directory, as `nobody` (65534 when there is no
    /// such user), the detected toolchain, compile limits 30 s CPU, 60 s wall, 2 GiB, 64 MiB
    /// files, 64 tasks, 256 files; programs 16 MiB files, 16 tasks, 64 files; 1 MiB per output.
    pub fn new(helper: PathBuf) -> SandboxConfig {
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .map_or((65534, 65534), |user| {
                (user.uid.as_raw(), user.gid.as_raw())
            });
        SandboxConfig {
            helper,
            work_root: std::env::temp_dir(),
            job_user: nobody,
            toolchain: Toolchain::detect(),
            compile: StageLimits {
                cpu_time: Duration::from_secs(30),
                wall_time: Duration::from_secs(60),
                memory_mb: 2048,
                file_size_mb: 64,
                processes: 64,
                open_files: 256,
            },
            file_size_mb: 16,
            processes: 16,
            open_files: 64,
            output_cap: 1 << 20,
        }
    }

    /// [`SandboxConfig::new`] with the running binary as the helper: for the compute binary.
    pub fn for_current_exe() -> io::Result<SandboxConfig> {
        Ok(SandboxConfig::new(std::env::current_exe()?))
    }

    /// Whether jobs in `language` can run: its compiler or interpreter is known and the job
    /// user can run it (`--version`, through the sandbox). The error says why not.
    pub fn check_language(&self, language: Language) -> Result<(), String> {
        let program = self
            .toolchain
            .program(language)
            .ok_or_else(|| format!("no {} found", tool_name(language)))?;
        let dir = JobDir::create(&self.work_root, self.drop_to())
            .map_err(|error| format!("cannot make a job directory: {error}"))?;
        let spec = self.spec(&dir, &self.compile, None, program, vec!["--version".into()]);
        let stage = run_stage(self, &spec, true);
        match stage.end {
            Some(end) if end.exit == Some(0) => Ok(()),
            _ => Err(format!(
                "{} cannot be run by the job user: {}",
                program.display(),
                stage
                    .problem()
                    .unwrap_or_else(|| String::from_utf8_lossy(&stage.out.bytes).into_owned())
                    .trim()
            )),
        }
    }

    /// The (uid, gid) to drop to: the job user when we are root, else none.
    fn drop_to(&self) -> Option<(u32, u32)> {
        nix::unistd::geteuid().is_root().then_some(self.job_user)
    }

    fn spec(
        &self,
        dir: &JobDir,
        limits: &StageLimits,
        stdin: Option<PathBuf>,
        program: &Path,
        args: Vec<OsString>,
    ) -> helper::Spec {
        helper::Spec {
            limits: helper::Rlimits {
                cpu_s: whole_seconds(limits.cpu_time),
                as_bytes: limits.memory_mb.saturating_mul(1 << 20),
                fsize_bytes: limits.file_size_mb.saturating_mul(1 << 20),
                nproc: limits.processes,
                nofile: limits.open_files,
            },
            wall: limits.wall_time,
            cwd: dir.path.clone(),
            stdin,
            user: self.drop_to(),
            env: vec![
                ("PATH".into(), JOB_PATH.into()),
                ("TMPDIR".into(), dir.path.clone().into()),
            ],
            program: program.to_owned(),
            args,
        }
    }
}

fn tool_name(language: Language) -> &'static str {
    match language {
        Language::C => "C compiler (gcc)",
        Language::Cpp => "C++ compiler (g++)",
        Language::Rust => "Rust compiler (rustc)",
        Language::Python => "Python interpreter (python3)",
    }
}

/// CPU seconds for RLIMIT_CPU: rounded up, at least 1 (0 would mean no limit to nobody, but
/// an instant SIGXCPU is not useful either).
fn whole_seconds(time: Duration) -> u64 {
    let seconds = time.as_secs() + u64::from(time.subsec_nanos() > 0);
    seconds.max(1)
}

/// Bytes captured from one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes written, at most [`SandboxConfig::output_cap`].
    pub bytes: Vec<u8>,
    /// More was written, and dropped.
    pub truncated: bool,
}

/// What one stage used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// User + system CPU time of all its processes, ms.
    pub cpu_ms: u64,
    /// Wall-clock time, ms.
    pub wall_ms: u64,
    /// Largest resident set of any one of its processes, KiB.
    pub peak_kb: u64,
}

/// The result of [`run_job`]: the fields of a `<job-result>` (but its id, compute and host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    /// How it ended.
    pub status: JobStatus,
    /// The program's exit code (the compiler's, for `compile-error`), when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it (the compiler, for `compile-error`), when one did.
    pub signal: Option<i32>,
    /// The program's standard output.
    pub stdout: Captured,
    /// The program's standard error.
    pub stderr: Captured,
    /// The compiler's standard output and error, interleaved as written.
    pub compiler_output: Captured,
    /// The program's figures (all zero when it did not run).
    pub usage: Usage,
    /// The compiler's figures, when a compiler ran.
    pub compile_usage: Option<Usage>,
    /// A word for people: why, for everything but `ok`, `runtime-error` and `compile-error`.
    pub message: Option<String>,
}

impl JobOutcome {
    fn failed(status: JobStatus, message: String) -> JobOutcome {
        JobOutcome {
            status,
            exit_code: None,
            signal: None,
            stdout: Captured::default(),
            stderr: Captured::default(),
            compiler_output: Captured::default(),
            usage: Usage::default(),
            compile_usage: None,
            message: Some(message),
        }
    }
}

/// Compiles and runs `request` in a fresh job directory, as described in the
/// [module documentation](self). Blocks the calling thread for at most about the compile
/// stage's wall limit plus the job's, plus a few seconds of backstop; never longer. Never
/// panics; sandbox failures come back as `internal-error`.
pub fn run_job(request: &JobRequest<'_>, config: &SandboxConfig) -> JobOutcome {
    let Some(tool) = config.toolchain.program(request.language) else {
        return JobOutcome::failed(
            JobStatus::InternalError,
            format!("this compute has no {}", tool_name(request.language)),
        );
    };
    let dir = match JobDir::create(&config.work_root, config.drop_to()) {
        Ok(dir) => dir,
        Err(error) => {
            return JobOutcome::failed(
                JobStatus::InternalError,
                format!("cannot make a job directory: {error}"),
            )
        }
    };
    let source_name = match request.language {
        Language::C => "main.c",
        Language::Cpp => "main.cpp",
        Language::Rust => "main.rs",
        Language::Python => "main.py",
    };
    let written = dir
        .write_new(source_name, request.source)
        .and_then(|_| dir.write_new("stdin", request.stdin));
    let stdin_path = match written {
        Ok(path) => path,
        Err(error) => {
            return JobOutcome::failed(
                JobStatus::InternalError,
                format!("cannot write the job's files: {error}"),
            )
        }
    };

    let mut outcome = JobOutcome::failed(JobStatus::Ok, String::new());
    outcome.message = None;
    let compile_args: Option<Vec<&str>> = match request.language {
        Language::C => Some(vec![
            "-std=gnu17",
            "-O2",
            "-pipe",
            "-o",
            "main",
            "main.c",
            "-lm",
        ]),
        Language::Cpp => Some(vec![
            "-std=gnu++17",
            "-O2",
            "-pipe",
            "-o",
            "main",
            "main.cpp",
        ]),
        Language::Rust => Some(vec!["--edition=2021", "-O", "-o", "main", "main.rs"]),
        Language::Python => None,
    };
    let (program, args): (PathBuf, Vec<OsString>) = match compile_args {
        Some(compile_args) => {
            let args = compile_args.into_iter().map(OsString::from).collect();
            let spec = config.spec(&dir, &config.compile, None, tool, args);
            let stage = run_stage(config, &spec, true);
            outcome.compiler_output = stage.out.clone();
            if let Some(problem) = stage.problem() {
                outcome.status = JobStatus::InternalError;
                outcome.message = Some(format!("compiling: {problem}"));
                return outcome;
            }
            let Some(end) = stage.end else {
                outcome.status = JobStatus::InternalError;
                outcome.message = Some("compiling: the sandbox did not report".to_owned());
                return outcome;
            };
            outcome.compile_usage = Some(end.usage());
            if let Some(message) = compile_failure(&end, &config.compile, stage.overflowed) {
                outcome.status = JobStatus::CompileError;
                outcome.exit_code = end.exit;
                outcome.signal = end.signal;
                outcome.message = message;
                return outcome;
            }
            let binary = dir.path.join("main");
            if !binary.is_file() {
                outcome.status = JobStatus::InternalError;
                outcome.message = Some("the compiler made no program".to_owned());
                return outcome;
            }
            (binary, Vec::new())
        }
        None => (
            tool.to_owned(),
            // Isolated mode (no PYTHON* variables, no user site), no site module, no .pyc.
            ["-I", "-S", "-B", source_name]
                .into_iter()
                .map(OsString::from)
                .collect(),
        ),
    };

    let limits = StageLimits {
        cpu_time: request.cpu_time,
        wall_time: request.wall_time,
        memory_mb: request.memory_mb,
        file_size_mb: config.file_size_mb,
        processes: config.processes,
        open_files: config.open_files,
    };
    let spec = config.spec(&dir, &limits, Some(stdin_path), &program, args);
    let stage = run_stage(config, &spec, false);
    outcome.stdout = stage.out.clone();
    outcome.stderr = stage.err.clone();
    if stage.error.is_none()
        && stage
            .exec_failed
            .as_deref()
            .is_some_and(|why| why.contains("os error 12"))
    {
        // ENOMEM from execve: the memory limit is too small to even load the program.
        outcome.status = JobStatus::MemoryLimit;
        outcome.message = stage.exec_failed;
        return outcome;
    }
    if let Some(problem) = stage.problem() {
        outcome.status = JobStatus::InternalError;
        outcome.message = Some(problem);
        return outcome;
    }
    let Some(end) = stage.end else {
        outcome.status = JobStatus::InternalError;
        outcome.message = Some("the sandbox did not report".to_owned());
        return outcome;
    };
    outcome.usage = end.usage();
    outcome.exit_code = end.exit;
    outcome.signal = end.signal;
    let (status, message) = classify_run(&end, request, &stage);
    outcome.status = status;
    outcome.message = message;
    drop(dir);
    outcome
}

const SIGXCPU: i32 = Signal::SIGXCPU as i32;
const SIGXFSZ: i32 = Signal::SIGXFSZ as i32;

/// Why the compile stage failed, as `Some(message)`; `None` when it succeeded.
fn compile_failure(end: &End, limits: &StageLimits, overflowed: bool) -> Option<Option<String>> {
    let over_cpu = u128::from(end.cpu_us / 1000) > limits.cpu_time.as_millis();
    if end.killed == Killed::Wall || end.signal == Some(SIGXCPU) || over_cpu {
        return Some(Some("the compiler passed its time limit".to_owned()));
    }
    if overflowed {
        return Some(Some("the compiler wrote too much".to_owned()));
    }
    match (end.exit, end.signal) {
        (Some(0), _) => None,
        (_, Some(signal)) => Some(Some(format!("the compiler was killed by signal {signal}"))),
        _ => Some(None),
    }
}

fn classify_run(end: &End, request: &JobRequest<'_>, stage: &Stage) -> (JobStatus, Option<String>) {
    if stage.overflowed {
        return (
            JobStatus::OutputLimit,
            Some("it wrote more output than is kept".to_owned()),
        );
    }
    if end.killed == Killed::Wall {
        return (
            JobStatus::TimeLimit,
            Some("it passed its wall-clock limit".to_owned()),
        );
    }
    if end.signal == Some(SIGXCPU) || u128::from(end.cpu_us / 1000) > request.cpu_time.as_millis() {
        return (
            JobStatus::TimeLimit,
            Some("it passed its CPU time limit".to_owned()),
        );
    }
    if end.signal == Some(SIGXFSZ) {
        return (
            JobStatus::OutputLimit,
            Some("it wrote a file over the size limit".to_owned()),
        );
    }
    let failed = end.signal.is_some() || end.exit != Some(0);
    if failed && memory_suspect(end.maxrss_kb, request.memory_mb, &stage.err.bytes) {
        return (
            JobStatus::MemoryLimit,
            Some("it ran out of its memory limit (by its peak memory or its error output)".into()),
        );
    }
    match (end.exit, end.signal) {
        (_, Some(signal)) => (
            JobStatus::Signal,
            Some(format!("killed by signal {signal}")),
        ),
        (Some(0), _) => (JobStatus::Ok, None),
        _ => (JobStatus::RuntimeError, None),
    }
}

/// The memory-limit heuristic of the module documentation.
fn memory_suspect(peak_kb: u64, limit_mb: u64, stderr: &[u8]) -> bool {
    let limit_kb = limit_mb.saturating_mul(1024);
    if peak_kb.saturating_mul(10) >= limit_kb.saturating_mul(8) {
        return true;
    }
    const MARKERS: [&[u8]; 5] = [
        b"memory allocation of",
        b"std::bad_alloc",
        b"MemoryError",
        b"Cannot allocate memory",
        b"out of memory",
    ];
    MARKERS
        .iter()
        .any(|marker| stderr.windows(marker.len()).any(|window| window == *marker))
}

/// A private job directory, removed when dropped.
struct JobDir {
    path: PathBuf,
    owner: Option<(u32, u32)>,
}

impl JobDir {
    fn create(root: &Path, owner: Option<(u32, u32)>) -> io::Result<JobDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut tries = 0;
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |time| time.subsec_nanos());
            let name = format!(
                "sigma-job-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = root.join(name);
            // mkdir never follows a symlink and fails on any existing name.
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = JobDir { path, owner };
                    if let Some((uid, gid)) = owner {
                        std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid))?;
                    }
                    return Ok(dir);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && tries < 100 => {
                    tries += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Creates `name` (never an existing file or symlink), owned by the job user, mode 0600.
    fn write_new(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(bytes)?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        Ok(path)
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.path).is_err() {
            // Without root a job can leave directories it made unwritable (mode 0): give them
            // back their owner's permissions (not through symlinks) and try again.
            let _ = open_up(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn open_up(dir: &Path) -> io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_dir() {
            let _ = open_up(&entry.path());
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Killed {
    None,
    Wall,
    Stop,
}

/// The supervisor's `end` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct End {
    exit: Option<i32>,
    signal: Option<i32>,
    cpu_us: u64,
    maxrss_kb: u64,
    wall_us: u64,
    killed: Killed,
    leftovers: u64,
}

impl End {
    fn parse(line: &str) -> Option<End> {
        let mut end = End {
            exit: None,
            signal: None,
            cpu_us: 0,
            maxrss_kb: 0,
            wall_us: 0,
            killed: Killed::None,
            leftovers: 0,
        };
        for word in line.strip_prefix("end ")?.split(' ') {
            let (key, value) = word.split_once('=')?;
            match key {
                "exit" => end.exit = Some(value.parse().ok()?),
                "signal" => end.signal = Some(value.parse().ok()?),
                "cpu-us" => end.cpu_us = value.parse().ok()?,
                "maxrss-kb" => end.maxrss_kb = value.parse().ok()?,
                "wall-us" => end.wall_us = value.parse().ok()?,
                "leftovers" => end.leftovers = value.parse().ok()?,
                "killed" => {
                    end.killed = match value {
                        "none" => Killed::None,
                        "wall" => Killed::Wall,
                        "stop" => Killed::Stop,
                        _ => return None,
                    }
                }
                _ => {}
            }
        }
        Some(end)
    }

    fn usage(&self) -> Usage {
        Usage {
            cpu_ms: self.cpu_us / 1000,
            wall_ms: self.wall_us / 1000,
            peak_kb: self.maxrss_kb,
        }
    }
}

/// What run_stage saw.
#[derive(Debug, Default)]
struct Stage {
    end: Option<End>,
    exec_failed: Option<String>,
    error: Option<String>,
    out: Captured,
    err: Captured,
    overflowed: bool,
}

impl Stage {
    /// A failure of the sandbox (not of the program), if any.
    fn problem(&self) -> Option<String> {
        if let Some(error) = &self.error {
            return Some(error.clone());
        }
        if let Some(why) = &self.exec_failed {
            return Some(why.clone());
        }
        match self.end {
            None => Some("the sandbox supervisor ended without a report".to_owned()),
            Some(end) if end.leftovers > 0 => Some(format!(
                "{} process(es) of the job could not be killed",
                end.leftovers
            )),
            Some(_) => None,
        }
    }
}

enum Event {
    Overflow,
    OutputDone,
    Line(String),
    ReportDone,
}

/// Runs one stage through `HELPER sandbox-supervise`; `merge`: stdout and stderr into one
/// capture (`out`). Returns within the stage's wall limit plus [`BACKSTOP`] plus [`DRAIN`]
/// plus the time to reap the supervisor.
fn run_stage(config: &SandboxConfig, spec: &helper::Spec, merge: bool) -> Stage {
    let mut stage = Stage::default();
    let (events_tx, events) = mpsc::channel();
    let out = Arc::new(Mutex::new(Captured::default()));
    let err = Arc::new(Mutex::new(Captured::default()));
    let mut child = match spawn_supervisor(config, spec, merge, &events_tx, &out, &err) {
        Ok(child) => {
            drop(events_tx);
            child
        }
        Err(error) => {
            stage.error = Some(format!("cannot start the sandbox: {error}"));
            return stage;
        }
    };
    let supervisor = i32::try_from(child.id()).map(Pid::from_raw).ok();
    let mut outputs_open = if merge { 1 } else { 2 };
    let mut group: Option<i32> = None;
    let mut report_done_at: Option<Instant> = None;
    let backstop = Instant::now() + spec.wall + BACKSTOP;
    loop {
        if report_done_at.is_some() && outputs_open == 0 {
            break;
        }
        let deadline = match report_done_at {
            Some(at) => backstop.min(at + DRAIN),
            None => backstop,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(wait) {
            Ok(Event::Overflow) => {
                if !stage.overflowed {
                    stage.overflowed = true;
                    // Not yet reaped by us: the pid is still the supervisor's.
                    if let Some(pid) = supervisor {
                        let _ = kill(pid, Signal::SIGTERM);
                    }
                }
            }
            Ok(Event::OutputDone) => outputs_open -= 1,
            Ok(Event::Line(line)) => {
                if let Some(pid) = line.strip_prefix("started ") {
                    group = pid.parse().ok();
                } else if let Some(why) = line.strip_prefix("exec-failed ") {
                    stage.exec_failed = Some(why.to_owned());
                } else if let Some(why) = line.strip_prefix("error ") {
                    stage.error = Some(format!("sandbox: {why}"));
                } else if line.starts_with("end ") {
                    stage.end = End::parse(&line);
                }
            }
            Ok(Event::ReportDone) => report_done_at = Some(Instant::now()),
            Err(RecvTimeoutError::Timeout) => {
                if report_done_at.is_none() {
                    stage.error = Some("the sandbox supervisor did not finish in time".into());
                }
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if stage.end.is_none() {
        // The supervisor failed or hung: kill it, and the job's group if we know it. (A pid
        // could in principle have been reused here; this path is for a broken supervisor.)
        if let Some(pid) = supervisor {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if let Some(group) = group.filter(|&group| group > 1) {
            let _ = kill(Pid::from_raw(-group), Signal::SIGKILL);
        }
    }
    reap(&mut child);
    stage.out = take(&out);
    stage.err = take(&err);
    stage
}

/// Where a reader thread puts what it captures.
type Sink = Arc<Mutex<Captured>>;

/// A pipe whose ends are close-on-exec (only the ends handed to a child as its stdio are
/// inherited): (read end, write end).
pub(crate) fn pipe() -> io::Result<(std::fs::File, std::fs::File)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((std::fs::File::from(read), std::fs::File::from(write)))
}

fn take(captured: &Mutex<Captured>) -> Captured {
    match captured.lock() {
        Ok(mut guard) => std::mem::take(&mut *guard),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    }
}

/// Waits for the supervisor (it has reported, or been killed), killing it after two seconds.
fn reap(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn spawn_supervisor(
    config: &SandboxConfig,
    spec: &helper::Spec,
    merge: bool,
    events: &mpsc::Sender<Event>,
    out: &Arc<Mutex<Captured>>,
    err: &Arc<Mutex<Captured>>,
) -> io::Result<Child> {
    let (report, report_w) = pipe()?;
    let mut command = Command::new(&config.helper);
    command
        .arg(helper::SUPERVISE)
        .args(spec.to_args())
        .stdin(Stdio::from(report_w))
        .env_clear();
    let merged = if merge {
        let (reader, writer) = pipe()?;
        command
            .stdout(Stdio::from(writer.try_clone()?))
            .stderr(Stdio::from(writer));
        Some(reader)
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    let mut child = command.spawn()?;
    drop(command); // our copies of the pipes' write ends
    let cap = config.output_cap;
    let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(body)
    };
    let streams: Vec<(Box<dyn Read + Send>, Sink)> = match merged {
        Some(reader) => vec![(Box::new(reader), Arc::clone(out))],
        None => {
            let stdout = child.stdout.take().ok_or(io::ErrorKind::BrokenPipe)?;
            let stderr = child.stderr.take().ok_or(io::ErrorKind::BrokenPipe)?;
            vec![
                (Box::new(stdout), Arc::clone(out)),
                (Box::new(stderr), Arc::clone(err)),
            ]
        }
    };
    let mut failure = None;
    for (stream, sink) in streams {
        let events = events.clone();
        match spawn(
            "sandbox-output",
            Box::new(move || capture(stream, &sink, cap, &events)),
        ) {
            Ok(_detached) => {}
            Err(error) => failure = Some(error),
        }
    }
    let events = events.clone();
    match spawn(
        "sandbox-report",
        Box::new(move || read_report(report, &events)),
    ) {
        Ok(_detached) => {}
        Err(error) => failure = Some(error),
    }
    if let Some(error) = failure {
        // Without its readers the stage cannot be watched: stop it.
        let _ = child.kill();
        let _ = child.wait();
        return Err(error);
    }
    Ok(child)
}

/// Keeps the first `cap` bytes of `stream`, then drains and drops the rest (so the writer never
/// blocks on a full pipe before it is killed), flagging the overflow once.
fn capture(
    mut stream: impl Read,
    sink: &Mutex<Captured>,
    cap: usize,
    events: &mpsc::Sender<Event>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut overflowed = false;
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if overflowed {
            continue;
        }
        let Ok(mut captured) = sink.lock() else {
            break;
        };
        let room = cap.saturating_sub(captured.bytes.len());
        let kept = n.min(room);
        captured.bytes.extend_from_slice(&buffer[..kept]);
        if kept < n {
            captured.truncated = true;
            overflowed = true;
            drop(captured);
            let _ = events.send(Event::Overflow);
        }
    }
    let _ = events.send(Event::OutputDone);
}

fn read_report(report: impl Read, events: &mpsc::Sender<Event>) {
    // The supervisor writes a few short lines; cap what we take from it all the same.
    let mut lines = io::BufReader::new(report.take(64 * 1024)).split(b'\n');
    while let Some(Ok(line)) = lines.next() {
        let line = String::from_utf8_lossy(&line).into_owned();
        let _ = events.send(Event::Line(line));
    }
    let _ = events.send(Event::ReportDone);
}
