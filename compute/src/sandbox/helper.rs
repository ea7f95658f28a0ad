//! The two hidden helper modes of the compute binary: `sandbox-supervise` and `sandbox-init`.
//!
//! ```text
//! compute (library, run_job; root)
//!   └─ compute sandbox-supervise …   root; makes the stage's cgroup, then unshares the mount,
//!        │                          pid, net, ipc and uts namespaces and builds the private
//!        │                          root (namespaces.rs); fd 0 = report pipe to run_job,
//!        │                          fd 1, fd 2 = the job's output pipes
//!        └─ /proc/self/exe sandbox-init …   pid 1 of the new pid namespace, still root: joins
//!             │                          the cgroup, mounts /proc, pivot_root, sets rlimits,
//!             │                          Landlock and seccomp on itself, then starts:
//!             └─ the program (pid 2)      as the job user (no supplementary groups), in /job,
//!                                         with only PATH, TMPDIR and HOME
//! ```
//!
//! The supervisor stays outside the new pid namespace, so it can wait for pid 1 and kill it:
//! it does on the wall-clock deadline, when the cgroup's CPU time passes the limit, or when
//! asked (SIGTERM, SIGINT or SIGHUP: run_job sends SIGTERM when an output passes its cap).
//! When pid 1 of a pid namespace dies, the kernel kills every other process in it, so no
//! daemon outlives its stage. The supervisor then kills whatever the cgroup still holds, reads
//! the cgroup's figures and removes it.
//!
//! pid 1 reports on a pipe (its fd 0) to the supervisor; the supervisor reports on its fd 0 to
//! run_job, one line each, ASCII:
//!
//! ```text
//! started <pid>
//! exec-failed <message>        the program could not be started (then `end` as usual)
//! error <message>              the sandbox itself failed (usage, cgroup, namespaces, spawn)
//! end <exit=N|signal=N> cpu-us=N maxrss-kb=N wall-us=N killed=<none|wall|cpu|stop>
//!     leftovers=N oom=N task-limit=N landlock=<full|partial|none|unknown>
//! ```
//!
//! `cpu-us` and `maxrss-kb` are the cgroup's (every process of the stage together: CPU time,
//! and the peak of their memory at any one time), `oom` the kernel's OOM kills in it,
//! `task-limit` the forks it refused.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::cgroup::{self, Hierarchy};
use super::{filter, namespaces};

/// First argument of the compute binary that selects the supervisor mode.
pub const SUPERVISE: &str = "sandbox-supervise";
/// First argument that selects pid 1 of a stage.
pub const INIT: &str = "sandbox-init";

/// Per-process resource limits pid 1 sets on itself (and so on the program) before it starts
/// the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rlimits {
    /// RLIMIT_CPU soft limit, seconds (hard = soft + 1: SIGXCPU first, SIGKILL a second later).
    pub cpu_s: u64,
    /// RLIMIT_FSIZE, bytes.
    pub fsize_bytes: u64,
    /// RLIMIT_NOFILE.
    pub nofile: u64,
}

impl Rlimits {
    fn push_args(&self, args: &mut Vec<OsString>) {
        for (name, value) in [
            ("--cpu-s", self.cpu_s),
            ("--fsize-bytes", self.fsize_bytes),
            ("--nofile", self.nofile),
        ] {
            args.push(name.into());
            args.push(value.to_string().into());
        }
    }
}

/// What run_job asks the supervisor to run.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub limits: Rlimits,
    /// Wall-clock time of the stage.
    pub wall: Duration,
    /// CPU time of every process of the stage together (measured by the cgroup).
    pub cpu: Duration,
    /// Where the stage's cgroup is made.
    pub hierarchy: Hierarchy,
    /// The stage's cgroup name, unique on the host; it starts with compute's pid.
    pub group: String,
    /// The stage's cgroup limits.
    pub group_limits: cgroup::Limits,
    /// The stage's root.
    pub plan: namespaces::Plan,
    /// The file that becomes the program's stdin (in a root-only directory); None: /dev/null.
    pub stdin: Option<PathBuf>,
    /// The job user (uid, gid).
    pub user: (u32, u32),
    pub env: Vec<(OsString, OsString)>,
    /// The program, as a path inside the stage's root.
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

fn push(args: &mut Vec<OsString>, name: &str, value: impl Into<OsString>) {
    args.push(name.into());
    args.push(value.into());
}

impl Spec {
    /// The arguments of `compute sandbox-supervise`, after the mode word.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        self.limits.push_args(&mut args);
        push(&mut args, "--wall-us", self.wall.as_micros().to_string());
        push(&mut args, "--cpu-us", self.cpu.as_micros().to_string());
        for dir in self.hierarchy.dirs() {
            push(&mut args, "--cgroup", dir);
        }
        push(&mut args, "--group", self.group.clone());
        let limits = &self.group_limits;
        push(&mut args, "--memory-bytes", limits.memory_bytes.to_string());
        push(&mut args, "--tasks", limits.tasks.to_string());
        push(&mut args, "--cores", limits.cores.to_string());
        push(&mut args, "--rootfs", &self.plan.rootfs);
        push(&mut args, "--job-fs", &self.plan.job_fs);
        for bind in &self.plan.binds {
            push(&mut args, "--bind", bind);
        }
        if let Some(stdin) = &self.stdin {
            push(&mut args, "--stdin", stdin);
        }
        push(
            &mut args,
            "--user",
            format!("{}:{}", self.user.0, self.user.1),
        );
        for (key, value) in &self.env {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            push(&mut args, "--env", pair);
        }
        args.push("--".into());
        args.push(self.program.clone().into());
        args.extend(self.args.iter().cloned());
        args
    }
}

/// Parsed flags of either mode: `--name value` pairs, then `--`, then program and arguments.
struct Flags {
    pairs: Vec<(String, OsString)>,
    program: PathBuf,
    args: Vec<OsString>,
}

impl Flags {
    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Flags, String> {
        let mut pairs = Vec::new();
        loop {
            let name = args.next().ok_or("missing --")?;
            if name == "--" {
                break;
            }
            let name = name
                .into_string()
                .map_err(|_| "a flag name is not UTF-8".to_owned())?;
            let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
            pairs.push((name, value));
        }
        let program = PathBuf::from(args.next().ok_or("missing program")?);
        Ok(Flags {
            pairs,
            program,
            args: args.collect(),
        })
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a OsStr> + 'a {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_os_str())
    }

    fn get(&self, name: &str) -> Option<&OsStr> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_os_str())
    }

    fn path(&self, name: &str) -> Result<PathBuf, String> {
        self.get(name)
            .map(PathBuf::from)
            .ok_or_else(|| format!("missing {name}"))
    }

    fn number(&self, name: &str) -> Result<u64, String> {
        let value = self.get(name).ok_or_else(|| format!("missing {name}"))?;
        value
            .to_str()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| format!("{name}: not a number"))
    }

    fn limits(&self) -> Result<Rlimits, String> {
        Ok(Rlimits {
            cpu_s: self.number("--cpu-s")?,
            fsize_bytes: self.number("--fsize-bytes")?,
            nofile: self.number("--nofile")?,
        })
    }

    fn user(&self) -> Result<(u32, u32), String> {
        let text = self.get("--user").ok_or("missing --user")?;
        let text = text.to_str().ok_or("--user: not UTF-8")?;
        let (uid, gid) = text.split_once(':').ok_or("--user: expected UID:GID")?;
        Ok((
            uid.parse::<u32>().map_err(|_| "--user: bad uid")?,
            gid.parse::<u32>().map_err(|_| "--user: bad gid")?,
        ))
    }

    /// The `--env KEY=VALUE` pairs.
    fn env(&self) -> Vec<(&OsStr, &OsStr)> {
        self.all("--env")
            .map(|pair| {
                let bytes = pair.as_bytes();
                let at = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
                (
                    OsStr::from_bytes(&bytes[..at]),
                    OsStr::from_bytes(bytes.get(at + 1..).unwrap_or_default()),
                )
            })
            .collect()
    }
}

/// Runs a helper mode when `args` (the whole command line, program name first) selects one;
/// `None` otherwise. compute's `main` calls this before parsing its own command line.
pub fn helper_main(args: impl IntoIterator<Item = OsString>) -> Option<ExitCode> {
    let mut args = args.into_iter();
    let _program = args.next();
    let mode = args.next()?;
    if mode == SUPERVISE {
        Some(supervise(args))
    } else if mode == INIT {
        Some(init(args))
    } else {
        None
    }
}

/// A report channel: our fd 0, duplicated with close-on-exec so no child inherits it.
struct Report(Option<File>);

impl Report {
    fn open() -> Report {
        Report(
            io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .map(File::from),
        )
    }

    fn line(&mut self, text: &str) {
        // One line, no newline inside: the reader splits on '\n'.
        let text: String = text
            .chars()
            .map(|c| if c == '\n' { ' ' } else { c })
            .collect();
        if let Some(file) = &mut self.0 {
            if file.write_all(format!("{text}\n").as_bytes()).is_err() {
                // The reader went away; nobody reads the rest.
                self.0 = None;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Killed {
    None,
    Wall,
    Cpu,
    Stop,
}

fn supervise(args: impl Iterator<Item = OsString>) -> ExitCode {
    let mut report = Report::open();
    match supervise_inner(args, &mut report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            report.line(&format!("error {message}"));
            ExitCode::from(2)
        }
    }
}

/// The group is removed when this drops, whatever happened.
struct OwnedGroup(cgroup::Group);

impl Drop for OwnedGroup {
    fn drop(&mut self) {
        self.0.kill_all(Duration::from_secs(3));
        self.0.remove();
    }
}

fn supervise_inner(
    args: impl Iterator<Item = OsString>,
    report: &mut Report,
) -> Result<(), String> {
    let flags = Flags::parse(args)?;
    let limits = flags.limits()?;
    let wall = Duration::from_micros(flags.number("--wall-us")?);
    let cpu_limit_us = flags.number("--cpu-us")?;
    let dirs: Vec<PathBuf> = flags.all("--cgroup").map(PathBuf::from).collect();
    let hierarchy = Hierarchy::from_dirs(&dirs).ok_or("--cgroup: expected 1 or 4 directories")?;
    let name = flags.get("--group").and_then(OsStr::to_str);
    let name = name.ok_or("missing --group")?;
    let plan = namespaces::Plan {
        rootfs: flags.path("--rootfs")?,
        job_fs: flags.path("--job-fs")?,
        binds: flags.all("--bind").map(PathBuf::from).collect(),
    };
    let user = flags.user()?;

    // If run_job's thread (our parent) goes, we go, and pid 1 with us (its own death signal).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|error| format!("cannot set the parent-death signal: {error}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|error| format!("cannot handle signal {signal}: {error}"))?;
    }

    let group = OwnedGroup(hierarchy.create(
        name,
        cgroup::Limits {
            memory_bytes: flags.number("--memory-bytes")?,
            tasks: flags.number("--tasks")?,
            cores: flags.number("--cores")?,
        },
    )?);
    namespaces::enter(&plan)?;

    // pid 1 reports here; the write end is its fd 0 (it keeps a close-on-exec copy).
    let (mut from_init, to_init) =
        super::pipe().map_err(|error| format!("cannot make a pipe: {error}"))?;
    let mut init_args: Vec<OsString> = vec![INIT.into()];
    limits.push_args(&mut init_args);
    push(&mut init_args, "--rootfs", &plan.rootfs);
    for procs in group.0.procs_files() {
        push(&mut init_args, "--procs", procs);
    }
    if let Some(stdin) = flags.get("--stdin") {
        push(&mut init_args, "--stdin", stdin);
    }
    push(&mut init_args, "--user", format!("{}:{}", user.0, user.1));
    for (key, value) in flags.env() {
        let mut pair = key.to_owned();
        pair.push("=");
        pair.push(value);
        push(&mut init_args, "--env", pair);
    }
    init_args.push("--".into());
    init_args.push(flags.program.clone().into());
    init_args.extend(flags.args.iter().cloned());

    let started = Instant::now();
    let mut child = Command::new("/proc/self/exe")
        .args(&init_args)
        .stdin(Stdio::from(to_init))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .env_clear()
        .spawn()
        .map_err(|error| format!("cannot start the stage's pid 1: {error}"))?;
    let raw_pid =
        i32::try_from(child.id()).map_err(|_| "the child's pid does not fit".to_owned())?;
    let pid = Pid::from_raw(raw_pid);
    report.line(&format!("started {raw_pid}"));

    let mut killed = Killed::None;
    let mut pause = Duration::from_micros(200);
    let mut next_cpu_check = Instant::now();
    loop {
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => {}
            Err(Errno::EINTR) => continue,
            // Exited (kept as a zombie: WNOWAIT), or a status nix cannot express: it is over.
            Ok(_) | Err(_) => break,
        }
        if killed == Killed::None {
            if stop.load(Ordering::Relaxed) {
                killed = Killed::Stop;
            } else if started.elapsed() >= wall {
                killed = Killed::Wall;
            } else if Instant::now() >= next_cpu_check {
                next_cpu_check = Instant::now() + Duration::from_millis(20);
                if group.0.cpu_us() > cpu_limit_us {
                    killed = Killed::Cpu;
                }
            }
            if killed != Killed::None {
                // pid 1 is a zombie at worst (not reaped yet), so its pid is still its own.
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    let wall_used = started.elapsed();
    let _ = child.wait();
    let mut lines = String::new();
    // pid 1 is gone, and with it every process of its namespace: the pipe is at its end.
    let _ = (&mut from_init).take(64 * 1024).read_to_string(&mut lines);
    let mut status = None;
    let mut landlock = "unknown";
    for line in lines.lines() {
        if let Some(ended) = line.strip_prefix("status ") {
            status = Some(ended.to_owned());
        } else if let Some(level) = line.strip_prefix("landlock ") {
            landlock = match level {
                "full" => "full",
                "partial" => "partial",
                _ => "none",
            };
        } else if line.starts_with("exec-failed ") {
            report.line(line);
        } else if let Some(why) = line.strip_prefix("error ") {
            return Err(format!("in the stage: {why}"));
        }
    }
    let leftovers = group.0.kill_all(Duration::from_secs(3));
    let oom = group.0.oom_kills();
    let ended = match status {
        Some(status) => status,
        // Killed by us, or pid 1 itself killed by the OOM killer (a limit too small to even
        // start the program): the stage ended by SIGKILL.
        None if killed != Killed::None || oom > 0 => format!("signal={}", Signal::SIGKILL as i32),
        None => return Err("the stage's pid 1 ended without a status".into()),
    };
    let killed = match killed {
        Killed::None => "none",
        Killed::Wall => "wall",
        Killed::Cpu => "cpu",
        Killed::Stop => "stop",
    };
    report.line(&format!(
        "end {ended} cpu-us={} maxrss-kb={} wall-us={} killed={killed} leftovers={leftovers} oom={} task-limit={} landlock={landlock}",
        group.0.cpu_us(),
        group.0.peak_bytes() / 1024,
        wall_used.as_micros(),
        oom,
        group.0.task_limit_hits(),
    ));
    Ok(())
}

/// `sandbox-init`: pid 1 of the stage; see the module documentation.
fn init(args: impl Iterator<Item = OsString>) -> ExitCode {
    let mut report = Report::open();
    match init_inner(args, &mut report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            report.line(&format!("error {why}"));
            ExitCode::from(127)
        }
    }
}

fn init_inner(args: impl Iterator<Item = OsString>, report: &mut Report) -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|error| format!("cannot set the parent-death signal: {error}"))?;
    let flags = Flags::parse(args)?;
    // Into the cgroup before anything else: "0" is the writer itself.
    for procs in flags.all("--procs") {
        std::fs::write(procs, "0")
            .map_err(|e| format!("cannot join {}: {e}", Path::new(procs).display()))?;
    }
    let limits = flags.limits()?;
    let (uid, gid) = flags.user()?;
    // Opened here, before the root changes: the file is in compute's root-only directory.
    let stdin = match flags.get("--stdin") {
        None => File::open("/dev/null"),
        Some(path) => File::open(path),
    }
    .map_err(|error| format!("cannot open the input: {error}"))?;
    namespaces::enter_root(&flags.path("--rootfs")?)?;
    let cpu_hard = limits.cpu_s.saturating_add(1);
    for (resource, soft, hard) in [
        (Resource::RLIMIT_CORE, 0, 0),
        (Resource::RLIMIT_CPU, limits.cpu_s, cpu_hard),
        (
            Resource::RLIMIT_FSIZE,
            limits.fsize_bytes,
            limits.fsize_bytes,
        ),
        (Resource::RLIMIT_NOFILE, limits.nofile, limits.nofile),
    ] {
        setrlimit(resource, soft, hard)
            .map_err(|error| format!("cannot set {resource:?}: {error}"))?;
    }
    let landlock = filter::landlock()?;
    report.line(&format!("landlock {landlock}"));
    filter::seccomp()?;
    let mut command = Command::new(&flags.program);
    command
        .args(&flags.args)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .current_dir("/job")
        .env_clear()
        .envs(flags.env())
        // std also drops the supplementary groups (setgroups(0)) when root changes uid.
        .uid(uid)
        .gid(gid);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            report.line(&format!(
                "exec-failed cannot run {}: {error}",
                flags.program.display()
            ));
            report.line("status exit=127");
            return Ok(());
        }
    };
    let program = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // Reap everything (orphans of the namespace come to us) until the program itself ends;
    // our own end then takes the rest of the namespace with it.
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => {
                report.line(&format!("status exit={code}"));
                return Ok(());
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == program => {
                report.line(&format!("status signal={}", signal as i32));
                return Ok(());
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(error) => return Err(format!("waitpid: {error}")),
        }
    }
}
