//! Helpers for sigma's end-to-end tests: build the real binaries once, start them on loopback,
//! read what they print with bounded waits, send them real signals, and never leave one running
//! (every [`Process`] is killed and reaped when dropped, also when a test panics).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub mod cluster;
pub mod faults;
pub mod jobs;
pub mod netns;
pub mod raw;

/// The signals the programs must end cleanly on.
pub use libc::{SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// Path of a sigma binary (`manage`, `compute` or `report`), built once per test run in release
/// mode: the kernel is tens of times slower unoptimized, and the tests run real searches.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = workspace_root();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "manage",
                "-p",
                "compute",
                "-p",
                "report",
            ])
            .output()
            .expect("cargo can be started");
        assert!(
            output.status.success(),
            "building the binaries failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("release")
    });
    dir.join(name)
}

/// Lines a process printed, shared with the threads that read its pipes.
#[derive(Default)]
struct Transcript {
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// Both pipes reached end of file.
    closed_pipes: usize,
}

/// A started program. Its stdout and stderr are read line by line on background threads (so it
/// never blocks on a full pipe) and echoed, with its name, to the test's output.
pub struct Process {
    name: String,
    child: Child,
    transcript: Arc<(Mutex<Transcript>, Condvar)>,
    exit: Option<ExitStatus>,
}

impl Process {
    /// Starts `binary(program)` with `args`.
    pub fn start(program: &str, args: &[&str]) -> Process {
        Self::start_with(program, args, |_| {})
    }

    /// Starts `binary(program)` with `args` without echoing its output to the test's output
    /// (for programs run many times, such as a `report --xml` sampled every few milliseconds).
    pub fn start_quiet(program: &str, args: &[&str]) -> Process {
        Self::spawn(program, args, |_| {}, false)
    }

    /// Starts `binary(program)` with `args`, letting `configure` adjust the command (environment,
    /// working directory) first.
    pub fn start_with(
        program: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Process {
        Self::spawn(program, args, configure, true)
    }

    /// Starts `binary(program)` with `args` inside the network namespace `netns` (through
    /// `ip netns exec`, which execs the program: the process is the program itself, its pid is
    /// the program's, and killing it kills the program).
    pub fn start_in(
        netns: &str,
        program: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Process {
        Self::spawn_in(Some(netns), program, args, configure, true)
    }

    fn spawn(
        program: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
        echo: bool,
    ) -> Process {
        Self::spawn_in(None, program, args, configure, echo)
    }

    pub(crate) fn spawn_in(
        netns: Option<&str>,
        program: &str,
        args: &[&str],
        configure: impl FnOnce(&mut Command),
        echo: bool,
    ) -> Process {
        let mut command = match netns {
            None => Command::new(binary(program)),
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(binary(program));
                command
            }
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        let name = match netns {
            None => format!("{program}[{}]", child.id()),
            Some(netns) => format!("{program}[{}@{netns}]", child.id()),
        };
        let transcript = Arc::new((Mutex::new(Transcript::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        spawn_line_reader(name.clone(), stdout, Arc::clone(&transcript), false, echo);
        spawn_line_reader(name.clone(), stderr, Arc::clone(&transcript), true, echo);
        Process {
            name,
            child,
            transcript,
            exit: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: libc::c_int) {
        if self.exit.is_none() {
            // Only before reaping: after that the pid could belong to another process.
            send_signal(self.child.id(), signal);
        }
    }

    /// Waits at most `timeout` for a line on stderr containing `needle`; returns it.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_line(timeout, |t| {
            t.stderr.iter().find(|l| l.contains(needle)).cloned()
        })
    }

    /// Waits at most `timeout` for a line on stdout containing `needle`; returns it.
    pub fn wait_for_stdout(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_for_line(timeout, |t| {
            t.stdout.iter().find(|l| l.contains(needle)).cloned()
        })
    }

    fn wait_for_line(
        &self,
        timeout: Duration,
        find: impl Fn(&Transcript) -> Option<String>,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.transcript;
        let mut transcript = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = find(&transcript) {
                return Some(line);
            }
            let now = Instant::now();
            if now >= deadline || transcript.closed_pipes == 2 {
                return None;
            }
            transcript = changed
                .wait_timeout(transcript, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Everything printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let (lock, _) = &*self.transcript;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .stdout
            .clone()
    }

    /// Everything printed on stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        let (lock, _) = &*self.transcript;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .stderr
            .clone()
    }

    /// Waits at most `timeout` for the process to exit, then for its pipes to be read to the end.
    /// `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => return None,
            }
        }
        // The pipes may outlive the process by a moment (a grandchild may even hold them), so
        // the wait for the last lines is bounded too.
        self.wait_for_line(Duration::from_secs(2), |t| {
            (t.closed_pipes == 2).then(String::new)
        });
        self.exit
    }

    /// Waits for exit and asserts it was a clean exit 0 within `timeout`.
    pub fn expect_clean_exit(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Some(status) if status.success() => {}
            Some(status) => panic!("{} ended with {status}", self.name),
            None => panic!("{} still running after {timeout:?}", self.name),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn send_signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a failed call is harmless here.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

fn spawn_line_reader(
    name: String,
    pipe: impl Read + Send + 'static,
    transcript: Arc<(Mutex<Transcript>, Condvar)>,
    is_stderr: bool,
    echo: bool,
) {
    thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            if echo {
                eprintln!("{name}{} {line}", if is_stderr { "!" } else { ":" });
            }
            let (lock, changed) = &*transcript;
            let mut t = lock.lock().unwrap_or_else(|e| e.into_inner());
            if is_stderr {
                t.stderr.push(line);
            } else {
                t.stdout.push(line);
            }
            changed.notify_all();
        }
        let (lock, changed) = &*transcript;
        lock.lock().unwrap_or_else(|e| e.into_inner()).closed_pipes += 1;
        changed.notify_all();
    });
}

/// A running manage on 127.0.0.1 with a port the kernel chose, and its state folder.
pub struct Manage {
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its state folder (removed when the test ends).
    pub state: tempfile::TempDir,
    /// The network namespace it runs in, or `None` for this one.
    pub netns: Option<String>,
    /// The namespace `report` runs in to reach it; `None`: the same as manage's.
    pub report_netns: Option<String>,
}

impl Manage {
    /// Starts manage on 127.0.0.1:0 with a fresh state folder and `extra` arguments, and waits
    /// for it to say where it listens.
    pub fn start(extra: &[&str]) -> Manage {
        Self::start_fresh(extra, true)
    }

    /// As [`Manage::start`], without echoing manage's log to the test's output (for benchmarks,
    /// whose own output is the point).
    pub fn start_quiet(extra: &[&str]) -> Manage {
        Self::start_fresh(extra, false)
    }

    fn start_fresh(extra: &[&str], echo: bool) -> Manage {
        let state = tempfile::tempdir().expect("a temporary folder");
        let process = Self::launch(None, state.path(), "127.0.0.1:0", extra, echo);
        let address = listening_address(&process);
        Manage {
            process,
            address,
            state,
            netns: None,
            report_netns: None,
        }
    }

    /// Starts manage in the network namespace `netns`, listening on `listen` (an address of
    /// that namespace), with a fresh state folder and `extra` arguments.
    pub fn start_in(netns: &str, listen: &str, extra: &[&str]) -> Manage {
        let state = tempfile::tempdir().expect("a temporary folder");
        let process = Self::start_on_state_in(Some(netns), state.path(), listen, extra);
        let address = listening_address(&process);
        Manage {
            process,
            address,
            state,
            netns: Some(netns.to_string()),
            report_netns: None,
        }
    }

    /// Starts manage on an existing state folder and address (for restarts).
    pub fn start_on_state(state: &Path, listen: &str, extra: &[&str]) -> Process {
        Self::start_on_state_in(None, state, listen, extra)
    }

    /// Starts manage on an existing state folder and address, in `netns` if given.
    pub fn start_on_state_in(
        netns: Option<&str>,
        state: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Process {
        Self::launch(netns, state, listen, extra, true)
    }

    fn launch(
        netns: Option<&str>,
        state: &Path,
        listen: &str,
        extra: &[&str],
        echo: bool,
    ) -> Process {
        let state_arg = state.to_str().expect("temporary paths are UTF-8");
        // The event log on stdout: what the tests follow (see cluster::parse_events).
        let mut args = vec!["--listen", listen, "--state", state_arg, "--events", "-"];
        // The dashboard only where a test asks for it: parallel tests would race for its port.
        if !extra.contains(&"--http") {
            args.extend_from_slice(&["--http", "off"]);
        }
        args.extend_from_slice(extra);
        let debug_log = |c: &mut Command| {
            c.env("RUST_LOG", "debug");
        };
        Process::spawn_in(netns, "manage", &args, debug_log, echo)
    }

    /// The namespace report runs in to reach this manage (`None`: this one).
    pub fn report_netns(&self) -> Option<&str> {
        self.report_netns.as_deref().or(self.netns.as_deref())
    }

    /// The token file manage created in its state folder.
    pub fn token_file(&self) -> PathBuf {
        self.state.path().join("token")
    }

    /// The job-submission token manage made beside the cluster token (`report run` only).
    pub fn submit_token_file(&self) -> PathBuf {
        self.state.path().join("submit-token")
    }

    /// Runs `report --token-file SUBMIT-TOKEN run FILE EXTRA…` against this manage and waits
    /// (bounded) for it.
    pub fn report_run(
        &self,
        file: &Path,
        extra: &[&str],
    ) -> (ExitStatus, Vec<String>, Vec<String>) {
        let address = self.address_arg();
        let token = self.submit_token_file();
        let token = token.to_str().expect("temporary paths are UTF-8");
        let file = file.to_str().expect("temporary paths are UTF-8");
        let mut args = vec![address.as_str(), "--token-file", token, "run", file];
        args.extend_from_slice(extra);
        let mut report = Process::spawn_in(self.report_netns(), "report", &args, |_| {}, true);
        let status = report
            .wait_exit(Duration::from_secs(220))
            .expect("report run finishes within 220 s");
        (status, report.stdout_lines(), report.stderr_lines())
    }

    /// The address as `HOST:PORT`, for compute and report.
    pub fn address_arg(&self) -> String {
        self.address.to_string()
    }

    /// Starts a compute against this manage.
    pub fn start_compute(&self, extra: &[&str]) -> Process {
        self.compute(extra, true)
    }

    /// As [`Manage::start_compute`], without echoing its log.
    pub fn start_compute_quiet(&self, extra: &[&str]) -> Process {
        self.compute(extra, false)
    }

    fn compute(&self, extra: &[&str], echo: bool) -> Process {
        let address = self.address_arg();
        let mut args = vec![address.as_str()];
        // Normal priority unless a test asks: at SCHED_IDLE a compute gets no CPU while the
        // tests running beside it keep both cores busy, and its joins and ranges stop being
        // bounded in time.
        if !extra.contains(&"--priority") {
            args.extend_from_slice(&["--priority", "normal"]);
        }
        args.extend_from_slice(extra);
        Process::spawn("compute", &args, |_| {}, echo)
    }

    /// Runs `report` against this manage with `extra` arguments and waits (bounded) for it.
    pub fn report(&self, extra: &[&str]) -> (ExitStatus, Vec<String>, Vec<String>) {
        let address = self.address_arg();
        let token = self.token_file();
        let token = token.to_str().expect("temporary paths are UTF-8");
        let mut args = vec![address.as_str(), "--token-file", token];
        args.extend_from_slice(extra);
        let mut report = Process::spawn_in(self.report_netns(), "report", &args, |_| {}, true);
        let status = report
            .wait_exit(Duration::from_secs(20))
            .expect("report finishes within 20 s");
        (status, report.stdout_lines(), report.stderr_lines())
    }
}

/// The address in the `listening` event a manage started with `--events -` writes at start.
pub fn listening_address(process: &Process) -> SocketAddr {
    let fields = cluster::wait_for_event(process, "listening", Duration::from_secs(60))
        .expect("manage says where it listens within 60 s");
    let address = fields
        .iter()
        .find(|(key, _)| key == "address")
        .map(|(_, value)| value.as_str())
        .unwrap_or_else(|| panic!("no address in the listening event {fields:?}"));
    address
        .parse()
        .unwrap_or_else(|e| panic!("bad address {address:?} in {fields:?}: {e}"))
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The perfect numbers below 2^64, for checking results.
pub const PERFECT_NUMBERS: [u64; 8] = [
    6,
    28,
    496,
    8128,
    33_550_336,
    8_589_869_056,
    137_438_691_328,
    2_305_843_008_139_952_128,
];
