//! The two hidden helper modes of the compute binary, `sandbox-supervise` and `sandbox-exec`.
//!
//! They exist so that the sandbox needs no `unsafe` code: everything a child must do between
//! `fork` and `exec` (set resource limits, change user, join a process group) is done either by
//! std's safe `Command` options (`uid`, `gid`, `process_group`, `current_dir`, `env_clear`) or
//! by a freshly started process acting on itself before it calls the safe
//! [`CommandExt::exec`](std::os::unix::process::CommandExt::exec).
//!
//! ```text
//! compute (library, run_job)
//!   └─ compute sandbox-supervise …      same user as compute; no limits; a child subreaper
//!        │  fd 0 = report pipe to run_job; fd 1, fd 2 = the job's output pipes
//!        └─ /proc/self/exe sandbox-exec …  started as the job user, in a new process group T,
//!             │                           in the job directory, with the emptied environment;
//!             │                           sets its own rlimits, then execs the program:
//!             └─ the program (same pid T)
//! ```
//!
//! The supervisor waits for T, kills the group `-T` on the wall deadline or when asked (SIGTERM,
//! SIGINT or SIGHUP: run_job sends SIGTERM when an output passes its cap), kills whatever is
//! left of the group when T ends (while T is still an unreaped zombie, so the group id cannot
//! have been reused), then kills and reaps every remaining descendant (as a subreaper it
//! inherits the orphans, including those that left the group with `setsid`). Only then does it
//! read `getrusage(RUSAGE_CHILDREN)`: the supervisor has no other children, so the figures are
//! exactly the job's (T and every descendant reaped).
//!
//! Report lines on fd 0, one per line, ASCII:
//!
//! ```text
//! started <pid>
//! exec-failed <message>        the program could not be started (then `end` as usual)
//! error <message>              the supervisor itself failed (usage, spawn, wait)
//! end <exit=N|signal=N> cpu-us=N maxrss-kb=N wall-us=N killed=<none|wall|stop> leftovers=N
//! ```

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{getrusage, setrlimit, Resource, UsageWho};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{getuid, Pid};

/// First argument of the compute binary that selects the supervisor mode.
pub const SUPERVISE: &str = "sandbox-supervise";
/// First argument that selects the limit-and-exec mode.
pub const EXEC: &str = "sandbox-exec";

/// Resource limits set by `sandbox-exec` on itself before it execs the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rlimits {
    /// RLIMIT_CPU soft limit, seconds (hard = soft + 1: SIGXCPU first, SIGKILL a second later).
    pub cpu_s: u64,
    /// RLIMIT_AS, bytes.
    pub as_bytes: u64,
    /// RLIMIT_FSIZE, bytes.
    pub fsize_bytes: u64,
    /// Processes (threads) the job may add to those its user already has (RLIMIT_NPROC counts
    /// every task of the real user id, system-wide).
    pub nproc: u64,
    /// RLIMIT_NOFILE.
    pub nofile: u64,
}

impl Rlimits {
    fn push_args(&self, args: &mut Vec<OsString>) {
        for (name, value) in [
            ("--cpu-s", self.cpu_s),
            ("--as-bytes", self.as_bytes),
            ("--fsize-bytes", self.fsize_bytes),
            ("--nproc", self.nproc),
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
    pub wall: Duration,
    pub cwd: PathBuf,
    /// The file that becomes the program's stdin; None: /dev/null.
    pub stdin: Option<PathBuf>,
    /// Run as this (uid, gid), with no supplementary groups; None: stay the current user.
    pub user: Option<(u32, u32)>,
    pub env: Vec<(OsString, OsString)>,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Spec {
    /// The arguments of `compute sandbox-supervise`, after the mode word.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        self.limits.push_args(&mut args);
        args.push("--wall-us".into());
        args.push(self.wall.as_micros().to_string().into());
        args.push("--cwd".into());
        args.push(self.cwd.clone().into());
        if let Some(stdin) = &self.stdin {
            args.push("--stdin".into());
            args.push(stdin.clone().into());
        }
        if let Some((uid, gid)) = self.user {
            args.push("--user".into());
            args.push(format!("{uid}:{gid}").into());
        }
        for (key, value) in &self.env {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            args.push("--env".into());
            args.push(pair);
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

    fn get(&self, name: &str) -> Option<&OsStr> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_os_str())
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
            as_bytes: self.number("--as-bytes")?,
            fsize_bytes: self.number("--fsize-bytes")?,
            nproc: self.number("--nproc")?,
            nofile: self.number("--nofile")?,
        })
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
    } else if mode == EXEC {
        Some(exec_program(args))
    } else {
        None
    }
}

/// The report channel: our fd 0, duplicated with close-on-exec so no child inherits it.
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
                // run_job went away; nobody reads the rest.
                self.0 = None;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Killed {
    None,
    Wall,
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

fn supervise_inner(
    args: impl Iterator<Item = OsString>,
    report: &mut Report,
) -> Result<(), String> {
    let flags = Flags::parse(args)?;
    let limits = flags.limits()?;
    let wall = Duration::from_micros(flags.number("--wall-us")?);
    let cwd = flags.get("--cwd").ok_or("missing --cwd")?;
    let user = match flags.get("--user") {
        None => None,
        Some(text) => {
            let text = text.to_str().ok_or("--user: not UTF-8")?;
            let (uid, gid) = text.split_once(':').ok_or("--user: expected UID:GID")?;
            Some((
                uid.parse::<u32>().map_err(|_| "--user: bad uid")?,
                gid.parse::<u32>().map_err(|_| "--user: bad gid")?,
            ))
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|error| format!("cannot handle signal {signal}: {error}"))?;
    }
    // Orphaned descendants are reparented to us, so we can kill and reap them all (and their
    // CPU time and memory land in our RUSAGE_CHILDREN).
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|error| format!("cannot become a child subreaper: {error}"))?;

    // The exec stage writes why it could not exec the program here; the pipe's write end is
    // close-on-exec there, so end of file without bytes means the exec happened.
    let (mut exec_errors, exec_errors_w) =
        super::pipe().map_err(|error| format!("cannot make a pipe: {error}"))?;

    let mut exec_args: Vec<OsString> = vec![EXEC.into()];
    limits.push_args(&mut exec_args);
    if let Some(stdin) = flags.get("--stdin") {
        exec_args.push("--stdin".into());
        exec_args.push(stdin.to_owned());
    }
    exec_args.push("--".into());
    exec_args.push(flags.program.clone().into());
    exec_args.extend(flags.args.iter().cloned());

    // /proc/self/exe rather than a path: it names this very binary even if the path is not
    // reachable by the job user (say, under a 0700 home directory).
    let mut command = Command::new("/proc/self/exe");
    command
        .args(&exec_args)
        .stdin(Stdio::from(exec_errors_w))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .current_dir(cwd)
        .env_clear()
        .process_group(0);
    for pair in flags
        .pairs
        .iter()
        .filter(|(key, _)| key == "--env")
        .map(|(_, pair)| pair)
    {
        let bytes = pair.as_bytes();
        let at = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        command.env(
            OsStr::from_bytes(&bytes[..at]),
            OsStr::from_bytes(bytes.get(at + 1..).unwrap_or_default()),
        );
    }
    if let Some((uid, gid)) = user {
        // std drops the supplementary groups too (setgroups(0)) when it changes uid as root.
        command.uid(uid).gid(gid);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start the exec stage: {error}"))?;
    drop(command); // closes our copy of the exec-error pipe's write end
    let raw_pid =
        i32::try_from(child.id()).map_err(|_| "the child's pid does not fit".to_owned())?;
    let pid = Pid::from_raw(raw_pid);
    report.line(&format!("started {raw_pid}"));

    let mut why = Vec::new();
    // Bounded: the exec stage sets four limits and execs; it cannot block here.
    let _ = exec_errors.read_to_end(&mut why);
    drop(exec_errors);
    if !why.is_empty() {
        report.line(&format!(
            "exec-failed {}",
            String::from_utf8_lossy(&why).trim()
        ));
    }

    let mut killed = Killed::None;
    let mut pause = Duration::from_micros(200);
    loop {
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => {}
            Err(Errno::EINTR) => continue,
            // Exited (kept as a zombie: WNOWAIT), or a status nix cannot express (a real-time
            // signal): either way it is over.
            Ok(_) | Err(_) => break,
        }
        if killed == Killed::None {
            if stop.load(Ordering::Relaxed) {
                killed = Killed::Stop;
            } else if started.elapsed() >= wall {
                killed = Killed::Wall;
            }
            if killed != Killed::None {
                let _ = kill(Pid::from_raw(-raw_pid), Signal::SIGKILL);
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    let wall_used = started.elapsed();
    // T is a zombie, not yet reaped: the group id -T still belongs to this job.
    let _ = kill(Pid::from_raw(-raw_pid), Signal::SIGKILL);
    let status = child
        .wait()
        .map_err(|error| format!("cannot reap the program: {error}"))?;
    let leftovers = reap_descendants(Duration::from_secs(3));
    let usage =
        getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|error| format!("getrusage: {error}"))?;
    let cpu_us = timeval_us(usage.user_time()) + timeval_us(usage.system_time());
    let ended = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit={code}"),
        (None, Some(signal)) => format!("signal={signal}"),
        (None, None) => "signal=0".to_owned(),
    };
    let killed = match killed {
        Killed::None => "none",
        Killed::Wall => "wall",
        Killed::Stop => "stop",
    };
    report.line(&format!(
        "end {ended} cpu-us={cpu_us} maxrss-kb={} wall-us={} killed={killed} leftovers={leftovers}",
        usage.max_rss().max(0),
        wall_used.as_micros()
    ));
    Ok(())
}

fn timeval_us(time: nix::sys::time::TimeVal) -> u64 {
    let us = i128::from(time.tv_sec()) * 1_000_000 + i128::from(time.tv_usec());
    u64::try_from(us.max(0)).unwrap_or(u64::MAX)
}

/// Kills and reaps every process left below us (orphans come to us: we are a subreaper) until
/// none is left or `patience` runs out; returns how many were still there at the end.
fn reap_descendants(patience: Duration) -> usize {
    let deadline = Instant::now() + patience;
    let me = std::process::id();
    loop {
        // Reap whatever has died.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => return 0,
                Err(_) => break,
            }
        }
        let children = children_of(me);
        if Instant::now() >= deadline {
            return children.len().max(1);
        }
        for child in &children {
            if let Ok(raw) = i32::try_from(*child) {
                let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The pids whose parent is `parent`, from /proc/<pid>/stat.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold anything, so split after its last ')'.
        let Some(close) = stat.iter().rposition(|&b| b == b')') else {
            continue;
        };
        let rest = String::from_utf8_lossy(&stat[close + 1..]);
        let ppid = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// `sandbox-exec`: already the job user, in the job directory, in its own process group. Sets
/// its rlimits, then becomes the program. Why it failed goes to fd 0 (a close-on-exec copy).
fn exec_program(args: impl Iterator<Item = OsString>) -> ExitCode {
    let mut errors = Report::open();
    let why = match exec_inner(args) {
        Ok(never) => match never {},
        Err(why) => why,
    };
    errors.line(&why);
    ExitCode::from(127)
}

fn exec_inner(args: impl Iterator<Item = OsString>) -> Result<Infallible, String> {
    let flags = Flags::parse(args)?;
    let limits = flags.limits()?;
    let stdin = match flags.get("--stdin") {
        None => Stdio::null(),
        Some(path) => Stdio::from(
            File::open(path).map_err(|error| format!("cannot open the input: {error}"))?,
        ),
    };
    // RLIMIT_NPROC counts every task of our real uid on the host; allow `nproc` more than
    // there are now (counting is racy, but only ever a little generous).
    let nproc = limits
        .nproc
        .saturating_add(tasks_of_user(getuid().as_raw()));
    let cpu_hard = limits.cpu_s.saturating_add(1);
    for (resource, soft, hard) in [
        (Resource::RLIMIT_CORE, 0, 0),
        (Resource::RLIMIT_CPU, limits.cpu_s, cpu_hard),
        (Resource::RLIMIT_AS, limits.as_bytes, limits.as_bytes),
        (
            Resource::RLIMIT_FSIZE,
            limits.fsize_bytes,
            limits.fsize_bytes,
        ),
        (Resource::RLIMIT_NPROC, nproc, nproc),
        (Resource::RLIMIT_NOFILE, limits.nofile, limits.nofile),
    ] {
        setrlimit(resource, soft, hard)
            .map_err(|error| format!("cannot set {resource:?}: {error}"))?;
    }
    let error = Command::new(&flags.program)
        .args(&flags.args)
        .stdin(stdin)
        .exec();
    Err(format!("cannot run {}: {error}", flags.program.display()))
}

/// Tasks (threads) whose real uid is `uid`, from /proc/<pid>/status.
fn tasks_of_user(uid: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut tasks = 0u64;
    for entry in entries.flatten() {
        if !entry.file_name().as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse::<u64>().ok())
        };
        if field("Uid:") == Some(u64::from(uid)) {
            tasks += field("Threads:").unwrap_or(1);
        }
    }
    tasks
}
