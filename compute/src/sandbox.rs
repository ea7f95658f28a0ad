//! Compile and run one program in an isolation sandbox, beside the search: [`run_job`].
//!
//! No networking here: the caller (the compute's client) turns a `<job>` into a [`JobRequest`]
//! and the [`JobOutcome`] into a `<job-result>`. [`SandboxConfig::prepare`] must succeed first:
//! it refuses, in one line, when isolation cannot be set up (never a silent fallback).
//!
//! # How a job runs
//!
//! 1. Its directory `job-<pid>-<n>` is made under [`SandboxConfig::jobs_root`], a root-owned
//!    0700 directory of compute's (by default `/run/sigma-compute`; never /tmp), and a fresh
//!    tmpfs of [`SandboxConfig::tmpfs_mb`] MiB (64 by default) is mounted on it. It holds
//!    `work` (the job's /job), `tmp` (its /tmp) and `shm` (its /dev/shm), all owned by the job
//!    user; the source is written to `work/main.c` (`main.cpp`, `main.rs`, `main.py`) before any
//!    code of the job runs. The input goes to `job-<pid>-<n>.stdin` beside it, out of the job's
//!    reach. The client's file name ([`JobRequest::name`]) is never used as a path.
//! 2. The compiler (gcc, g++, rustc; none for Python) runs as one stage, the program as a
//!    second, each through the compute binary's hidden helper modes (see [`helper_main`] and
//!    `sandbox/helper.rs`): a supervisor, root, which makes the stage's cgroup and fresh mount,
//!    pid, network, IPC and UTS namespaces with a private root (`sandbox/namespaces.rs`), and
//!    pid 1 of that pid namespace, which joins the cgroup, pivots into the private root, sets
//!    rlimits, Landlock and a seccomp deny list on itself (`sandbox/filter.rs`) and starts the
//!    compiler or program as the job user ([`SandboxConfig::job_user`], `nobody`).
//! 3. Limits of each stage, for all its processes together (the cgroup, `sandbox/cgroup.rs`):
//!    memory, tasks, CPU cores (a CFS quota of [`SandboxConfig::cores`], 1 by default, and the
//!    lowest CPU weight, so the search keeps the rest and wins any core it shares) and CPU
//!    time; per process: RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE = 0; the wall
//!    clock, kept by the supervisor; the writable space, by the tmpfs's size (a full disk is
//!    ENOSPC to the job); an output cap per stream kept here: past it the output is dropped
//!    (`truncated`) and the supervisor is asked to kill the stage.
//! 4. When pid 1 ends (the program ended, or it was killed) the kernel kills every process of
//!    the pid namespace; the supervisor then empties and removes the cgroup. After the job the
//!    tmpfs is detached (`umount -l`) and its mount point removed: root never walks, chmods or
//!    follows anything inside a directory the job could write, and nothing of the job is left
//!    on the host. Job directories and cgroups left by a compute that was killed are removed
//!    by the next `prepare` (mounts detached, not walked).
//!
//! # Measurements
//!
//! From the stage's cgroup: CPU time of all its processes (`cpu_ms`), and the peak of their
//! memory at any one time, files in the job's tmpfs included (`peak_kb`; it includes pid 1's
//! own pages, a few hundred KiB). Wall time is the supervisor's, from the start of pid 1 to its
//! end.
//!
//! # Status, and which limit ended the job
//!
//! In this order: the output passed its cap: `output-limit`; killed at the wall-clock deadline,
//! by the CPU time of the whole cgroup passing the limit, or by SIGXCPU: `time-limit`; killed by
//! SIGXFSZ (a file over the size limit): `output-limit`; the kernel OOM-killed a process of the
//! cgroup (or, on v1 kernels without that count, the cgroup hit its memory limit) and the
//! program ended badly: `memory-limit`. Then a signal: `signal`; a non-zero exit:
//! `runtime-error`; else `ok`. The message names the limit and its value. A fork refused at the
//! task limit is not a status of its own (the program sees EAGAIN), but the message says so
//! when it happened. A compiler that fails, for whatever reason (its limits included), gives
//! `compile-error`; a compiler that cannot be started, or a sandbox failure, `internal-error`.
//!
//! # What the sandbox stops
//!
//! docs/design.md, "Jobs and the sandbox", lists each attack, what stops it and the test that
//! shows it. In short, a job sees only its private root (the toolchains read-only, a generated
//! /etc/passwd, its own /job, /tmp and /dev/shm on its tmpfs), no other process (pid
//! namespace), no network at all (an empty network namespace: not even the host's loopback),
//! and cannot ptrace, mount, unshare, load BPF or modules, use keyrings or open sockets other
//! than AF_UNIX (seccomp). Not stopped: the job reads the toolchains' files (the same for
//! everyone) and uses the CPU time, memory and disk its limits give it.

#![forbid(unsafe_code)]

mod cgroup;
mod filter;
mod helper;
mod namespaces;

use std::ffi::OsString;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use cgroup::Hierarchy;
pub use helper::helper_main;
pub use xmlwire::protocol::{JobStatus, Language};

/// The `PATH` a job sees, and where [`Toolchain::detect`] looks first.
pub const JOB_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The job's directory, its current directory, inside its private root.
const JOB_DIR: &str = "/job";

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
    /// CPU time it may use, all its processes together.
    pub cpu_time: Duration,
    /// Wall-clock time it may run.
    pub wall_time: Duration,
    /// Memory it may use, all its processes together, in MiB.
    pub memory_mb: u64,
}

/// Limits of one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageLimits {
    /// CPU time, all processes together.
    pub cpu_time: Duration,
    /// Wall-clock time.
    pub wall_time: Duration,
    /// Memory of all processes together, MiB.
    pub memory_mb: u64,
    /// Largest file, MiB.
    pub file_size_mb: u64,
    /// Tasks (processes and threads) at once, pid 1 of the stage included.
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
    /// Whether they run in the sandbox is checked by [`SandboxConfig::check_language`].
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

    /// The install prefixes (the directory above `bin/`) of the tools outside /usr, as real
    /// paths: the sandbox binds them read-only at the same place (rustup's toolchain, pyenv's
    /// Python).
    pub fn prefixes(&self) -> Vec<PathBuf> {
        let mut prefixes: Vec<PathBuf> = Vec::new();
        for tool in [&self.gcc, &self.gxx, &self.rustc, &self.python3]
            .into_iter()
            .flatten()
        {
            let Ok(real) = std::fs::canonicalize(tool) else {
                continue;
            };
            let Some(prefix) = real.parent().and_then(Path::parent) else {
                continue;
            };
            let under_usr = prefix.starts_with("/usr") || real.starts_with("/usr");
            if !under_usr && prefix != Path::new("/") && !prefixes.iter().any(|p| p == prefix) {
                prefixes.push(prefix.to_owned());
            }
        }
        prefixes
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
    /// Where job directories are made: a root-owned 0700 directory (made by
    /// [`SandboxConfig::prepare`] if missing, refused if anyone else can enter it).
    pub jobs_root: PathBuf,
    /// (uid, gid) the job runs as.
    pub job_user: (u32, u32),
    /// Compilers and interpreter.
    pub toolchain: Toolchain,
    /// Limits of the compile stage.
    pub compile: StageLimits,
    /// Largest file the program may write, MiB.
    pub file_size_mb: u64,
    /// Tasks (processes and threads) the program may have at once.
    pub processes: u64,
    /// Open files per process of the program.
    pub open_files: u64,
    /// Bytes kept of each of stdout, stderr and the compiler's output.
    pub output_cap: usize,
    /// Size of the job's tmpfs (its /job, /tmp and /dev/shm together), MiB.
    pub tmpfs_mb: u64,
    /// CPU cores a stage may use at once.
    pub cores: u64,
    /// Where stages' cgroups go: set by [`SandboxConfig::prepare`].
    pub cgroups: Option<Hierarchy>,
}

/// Time the supervisor gets past a stage's wall limit before run_job kills it: its cleanup
/// (emptying the cgroup after a fork bomb, at most 3 s; removing its directories, at most 1 s
/// each) is bounded, but slow on a loaded host.
const BACKSTOP: Duration = Duration::from_secs(15);
/// Time the output pipes get to close once the supervisor has reported.
const DRAIN: Duration = Duration::from_secs(1);

impl SandboxConfig {
    /// Defaults: jobs under `/run/sigma-compute`, as `nobody` (65534 when there is no such
    /// user), the detected toolchain, compile limits 30 s CPU, 60 s wall, 2 GiB, 64 MiB files,
    /// 256 tasks, 256 files; programs 16 MiB files, 64 tasks, 64 files; 1 MiB per output; a
    /// 64 MiB tmpfs; 1 core.
    pub fn new(helper: PathBuf) -> SandboxConfig {
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .map_or((65534, 65534), |user| {
                (user.uid.as_raw(), user.gid.as_raw())
            });
        SandboxConfig {
            helper,
            jobs_root: PathBuf::from("/run/sigma-compute"),
            job_user: nobody,
            toolchain: Toolchain::detect(),
            compile: StageLimits {
                cpu_time: Duration::from_secs(30),
                wall_time: Duration::from_secs(60),
                memory_mb: 2048,
                file_size_mb: 64,
                processes: 256,
                open_files: 256,
            },
            file_size_mb: 16,
            processes: 64,
            open_files: 64,
            output_cap: 1 << 20,
            tmpfs_mb: 64,
            cores: 1,
            cgroups: None,
        }
    }

    /// [`SandboxConfig::new`] with the running binary as the helper: for the compute binary.
    pub fn for_current_exe() -> io::Result<SandboxConfig> {
        Ok(SandboxConfig::new(std::env::current_exe()?))
    }

    /// Sets up what isolation needs, or says in one line what is missing: root (namespaces,
    /// mounts and cgroups need it), usable cgroups, the jobs root; removes what a killed
    /// compute left; then runs a trial stage (`true`) through the whole sandbox.
    pub fn prepare(&mut self) -> Result<(), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err(
                "isolating jobs needs root (mount, pid and network namespaces, tmpfs mounts, cgroups)"
                    .to_owned(),
            );
        }
        let hierarchy = Hierarchy::detect()?;
        hierarchy.prepare()?;
        hierarchy.remove_stale();
        self.cgroups = Some(hierarchy);
        self.prepare_jobs_root()?;
        let probe = find_in(JOB_PATH, "true")
            .ok_or("no `true` in /usr/bin or /bin to try the sandbox with")?;
        let dir = JobDir::create(self)
            .map_err(|error| format!("cannot make a job directory: {error}"))?;
        let spec = self.spec(&dir, &self.compile, None, &probe, Vec::new());
        let stage = run_stage(self, &spec, true);
        match (stage.problem(), stage.end) {
            (None, Some(end)) if end.exit == Some(0) => Ok(()),
            (Some(problem), _) => Err(format!("the sandbox does not work here: {problem}")),
            (None, _) => Err(format!(
                "the sandbox does not work here: a trial stage failed: {}",
                String::from_utf8_lossy(&stage.out.bytes).trim()
            )),
        }
    }

    /// Makes [`SandboxConfig::jobs_root`] (root, 0700), or checks an existing one is a real
    /// directory of root's that no one else can enter; detaches what a killed compute left.
    fn prepare_jobs_root(&self) -> Result<(), String> {
        let root = &self.jobs_root;
        match DirBuilder::new().mode(0o700).create(root) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(format!("cannot make {}: {error}", root.display())),
        }
        let meta = std::fs::symlink_metadata(root)
            .map_err(|error| format!("cannot read {}: {error}", root.display()))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{} must be a directory of root's with mode 0700",
                root.display()
            ));
        }
        let rootfs = root.join(ROOTFS);
        match DirBuilder::new().mode(0o700).create(&rootfs) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(format!("cannot make {}: {error}", rootfs.display())),
        }
        for entry in std::fs::read_dir(root)
            .map_err(|error| format!("cannot read {}: {error}", root.display()))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(owner) = name
                .strip_prefix("job-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                continue;
            }
            // A killed compute's job: detach its tmpfs (no walk), remove the empty mount point
            // and the input file.
            let path = entry.path();
            let _ = umount2(&path, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&path);
            let _ = std::fs::remove_file(&path);
        }
        Ok(())
    }

    /// Whether jobs in `language` can run: its compiler or interpreter is known and runs
    /// (`--version`) in the sandbox. The error says why not.
    pub fn check_language(&self, language: Language) -> Result<(), String> {
        let program = self
            .toolchain
            .program(language)
            .ok_or_else(|| format!("no {} found", tool_name(language)))?;
        let dir = JobDir::create(self)
            .map_err(|error| format!("cannot make a job directory: {error}"))?;
        let spec = self.spec(&dir, &self.compile, None, program, vec!["--version".into()]);
        let stage = run_stage(self, &spec, true);
        match stage.end {
            Some(end) if end.exit == Some(0) && stage.problem().is_none() => Ok(()),
            _ => Err(format!(
                "{} cannot be run in the sandbox: {}",
                program.display(),
                stage
                    .problem()
                    .unwrap_or_else(|| String::from_utf8_lossy(&stage.out.bytes).into_owned())
                    .trim()
            )),
        }
    }

    fn spec(
        &self,
        dir: &JobDir,
        limits: &StageLimits,
        stdin: Option<PathBuf>,
        program: &Path,
        args: Vec<OsString>,
    ) -> helper::Spec {
        static STAGES: AtomicU64 = AtomicU64::new(0);
        helper::Spec {
            limits: helper::Rlimits {
                cpu_s: whole_seconds(limits.cpu_time),
                fsize_bytes: limits.file_size_mb.saturating_mul(1 << 20),
                nofile: limits.open_files,
            },
            wall: limits.wall_time,
            cpu: limits.cpu_time,
            // prepare() sets it; without it the supervisor refuses (no silent fallback).
            hierarchy: self
                .cgroups
                .clone()
                .unwrap_or(Hierarchy::V2(PathBuf::new())),
            group: format!(
                "{}-{}",
                std::process::id(),
                STAGES.fetch_add(1, Ordering::Relaxed)
            ),
            group_limits: cgroup::Limits {
                memory_bytes: limits.memory_mb.saturating_mul(1 << 20),
                tasks: limits.processes,
                cores: self.cores,
            },
            plan: namespaces::Plan {
                rootfs: self.jobs_root.join(ROOTFS),
                job_fs: dir.path.clone(),
                binds: self.toolchain.prefixes(),
            },
            stdin,
            user: self.job_user,
            env: vec![
                ("PATH".into(), JOB_PATH.into()),
                ("TMPDIR".into(), "/tmp".into()),
                ("HOME".into(), JOB_DIR.into()),
            ],
            program: program.to_owned(),
            args,
        }
    }
}

/// The empty directory under the jobs root that each stage mounts its private root on (in its
/// own mount namespace only).
const ROOTFS: &str = "rootfs";

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
    /// User + system CPU time of all its processes (its cgroup's), ms.
    pub cpu_ms: u64,
    /// Wall-clock time, ms.
    pub wall_ms: u64,
    /// Peak memory of all its processes together (its cgroup's), KiB.
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
    /// A word for people: why, for everything but `ok`, `runtime-error` and `compile-error`
    /// (and for those when a limit was met on the way), naming the limit.
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
    let dir = match JobDir::create(config) {
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
        .write_source(source_name, request.source)
        .and_then(|()| dir.write_stdin(request.stdin));
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
            (Path::new(JOB_DIR).join("main"), Vec::new())
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
    let (status, message) = classify_run(&end, &limits, &stage);
    outcome.status = status;
    outcome.message = message;
    drop(dir);
    outcome
}

const SIGXCPU: i32 = Signal::SIGXCPU as i32;
const SIGXFSZ: i32 = Signal::SIGXFSZ as i32;

/// Why the compile stage failed, as `Some(message)`; `None` when it succeeded.
fn compile_failure(end: &End, limits: &StageLimits, overflowed: bool) -> Option<Option<String>> {
    if let Some((JobStatus::TimeLimit | JobStatus::MemoryLimit, why)) = limit_met(end, limits) {
        return Some(Some(format!("the compiler {why}")));
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

/// The time or memory limit that ended a stage, if one did, with its value.
fn limit_met(end: &End, limits: &StageLimits) -> Option<(JobStatus, String)> {
    let ms = |time: Duration| time.as_millis();
    match end.killed {
        Killed::Wall => {
            return Some((
                JobStatus::TimeLimit,
                format!("passed its wall-clock limit ({} ms)", ms(limits.wall_time)),
            ))
        }
        Killed::Cpu => {
            return Some((
                JobStatus::TimeLimit,
                format!(
                    "passed its CPU time limit ({} ms, all its processes together)",
                    ms(limits.cpu_time)
                ),
            ))
        }
        Killed::None | Killed::Stop => {}
    }
    if end.signal == Some(SIGXCPU) || u128::from(end.cpu_us / 1000) > ms(limits.cpu_time) {
        return Some((
            JobStatus::TimeLimit,
            format!("passed its CPU time limit ({} ms)", ms(limits.cpu_time)),
        ));
    }
    let failed = end.signal.is_some() || end.exit != Some(0);
    if failed && end.oom > 0 {
        return Some((
            JobStatus::MemoryLimit,
            format!(
                "passed its memory limit ({} MiB, all its processes together)",
                limits.memory_mb
            ),
        ));
    }
    None
}

fn classify_run(end: &End, limits: &StageLimits, stage: &Stage) -> (JobStatus, Option<String>) {
    if stage.overflowed {
        return (
            JobStatus::OutputLimit,
            Some("it wrote more output than is kept".to_owned()),
        );
    }
    if let Some((status, why)) = limit_met(end, limits) {
        return (status, Some(format!("it {why}")));
    }
    if end.signal == Some(SIGXFSZ) {
        return (
            JobStatus::OutputLimit,
            Some(format!(
                "it wrote a file over the size limit ({} MiB)",
                limits.file_size_mb
            )),
        );
    }
    let tasks = (end.task_limit > 0).then(|| {
        format!(
            "its task limit ({} processes and threads) refused {} fork(s)",
            limits.processes, end.task_limit
        )
    });
    match (end.exit, end.signal) {
        (_, Some(signal)) => (
            JobStatus::Signal,
            Some(match tasks {
                Some(tasks) => format!("killed by signal {signal}; {tasks}"),
                None => format!("killed by signal {signal}"),
            }),
        ),
        (Some(0), _) => (JobStatus::Ok, tasks),
        _ => (JobStatus::RuntimeError, tasks),
    }
}

/// A job's directory: a tmpfs mounted on `<jobs root>/job-<pid>-<n>`, and its input file
/// beside it. Dropping it detaches the tmpfs and removes the (then empty) mount point: no walk.
struct JobDir {
    path: PathBuf,
    stdin: PathBuf,
    owner: (u32, u32),
}

impl JobDir {
    fn create(config: &SandboxConfig) -> io::Result<JobDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "job-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = config.jobs_root.join(&name);
        // The parent is root's and 0700: no one else can have planted anything here.
        DirBuilder::new().mode(0o700).create(&path)?;
        let mut dir = JobDir {
            stdin: config.jobs_root.join(format!("{name}.stdin")),
            path,
            owner: config.job_user,
        };
        let options = format!(
            "size={}m,nr_inodes=65536,mode=0755,uid=0,gid=0",
            config.tmpfs_mb.max(1)
        );
        if let Err(error) = mount(
            Some("sigma-job"),
            &dir.path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        ) {
            let _ = std::fs::remove_dir(&dir.path);
            // Nothing mounted: Drop must not try.
            dir.path = PathBuf::new();
            return Err(io::Error::from(error));
        }
        for sub in ["work", "tmp", "shm"] {
            let sub = dir.path.join(sub);
            DirBuilder::new().mode(0o700).create(&sub)?;
            std::os::unix::fs::chown(&sub, Some(dir.owner.0), Some(dir.owner.1))?;
        }
        Ok(dir)
    }

    /// Writes the source into the job's fresh tmpfs (no job code has run yet), readable by the
    /// job user.
    fn write_source(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(self.path.join("work").join(name))?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
    }

    /// Writes the input beside the job directory, in the root-only jobs root: pid 1 opens it
    /// as root before it enters the private root.
    fn write_stdin(&self, bytes: &[u8]) -> io::Result<PathBuf> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.stdin)?;
        file.write_all(bytes)?;
        Ok(self.stdin.clone())
    }
}

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.stdin);
        if self.path.as_os_str().is_empty() {
            return;
        }
        // Lazy unmount: the tmpfs and all in it go when the last user lets go; no walk.
        let _ = umount2(&self.path, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Killed {
    None,
    Wall,
    Cpu,
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
    oom: u64,
    task_limit: u64,
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
            oom: 0,
            task_limit: 0,
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
                "oom" => end.oom = value.parse().ok()?,
                "task-limit" => end.task_limit = value.parse().ok()?,
                "killed" => {
                    end.killed = match value {
                        "none" => Killed::None,
                        "wall" => Killed::Wall,
                        "cpu" => Killed::Cpu,
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
                if line.starts_with("started ") {
                    // pid 1 of the stage: the supervisor kills it; nothing to do here.
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
        // The supervisor failed or hung: kill it (pid 1 of the stage dies with it, by its
        // parent-death signal, and the namespace with pid 1), then empty and remove the
        // stage's cgroup in its place.
        if let Some(pid) = supervisor {
            let _ = kill(pid, Signal::SIGKILL);
        }
        reap(&mut child);
        if let Some(hierarchy) = &config.cgroups {
            let group = hierarchy.group(&spec.group);
            group.kill_all(Duration::from_secs(3));
            group.remove();
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
