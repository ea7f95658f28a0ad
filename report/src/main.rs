//! report: sigma's client. Shows the perfect numbers found, how many numbers are tested, and the
//! computes at work; `-k` asks manage to shut the whole cluster down; `run FILE` runs a program
//! on a compute that accepts jobs and passes on its output and exit code.
#![forbid(unsafe_code)]

mod progress;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use sigma_link::cli::{self, USAGE};
use sigma_link::token::{self, TokenError};
use sigma_link::{Link, LinkError, ResolveError};
use xmlwire::protocol::{self, ErrorCode, Message, Status};
use xmlwire::{Limits, XmlStr};

/// How long manage may take to accept the connection, and to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Shows what a sigma cluster found and who is working on it.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// manage's address.
    #[arg(default_value = "127.0.0.1:8128", value_name = "HOST[:PORT]", value_parser = sigma_link::server_argument)]
    server: String,
    /// Shut the whole cluster down (manage and every compute), cleanly.
    #[arg(short = 'k', long = "kill", conflicts_with_all = ["xml", "watch"])]
    kill: bool,
    /// Print the raw status document (its shape is fixed in docs/protocol.md).
    #[arg(long, conflicts_with = "watch")]
    xml: bool,
    /// Redraw the view every SECONDS (default 2) until Ctrl-C.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<f64>,
    /// The token to prove: for -k the cluster token [default: $SIGMA_TOKEN_FILE, else
    /// ./sigma-state/token]; for run the submission token, or the cluster token [default:
    /// $SIGMA_SUBMIT_TOKEN_FILE, else ./sigma-state/submit-token] (a manage started in this
    /// folder keeps both there).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a program on a compute that accepts jobs: its output comes out here, and its exit
    /// code is report's (124: time limit, 137: memory limit, 141: output limit, 1: compile
    /// error or a failure to run it).
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The source file: .c (C), .cpp or .cc (C++), .rs (Rust), .py (Python).
    file: PathBuf,
    /// Which compute runs it.
    #[arg(long, default_value = "least-loaded", value_parser = schedule_parser())]
    schedule: protocol::Schedule,
    /// A file to give the program as its standard input (default: none).
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,
    /// CPU and wall-clock time limit, in seconds.
    #[arg(long, value_name = "S", default_value = "5")]
    time_limit: f64,
    /// Memory limit, in MiB.
    #[arg(long, value_name = "MB", default_value = "256")]
    memory_limit: u64,
}

/// `--schedule` takes the wire's keywords, so the protocol's `Schedule` is the only enum.
fn schedule_parser() -> impl TypedValueParser<Value = protocol::Schedule> {
    PossibleValuesParser::new(
        protocol::Schedule::ALL
            .iter()
            .map(|schedule| schedule.as_str()),
    )
    .try_map(|name| protocol::Schedule::from_name(&name).ok_or("not a schedule"))
}

/// Exit codes of `report run` for a run that did not end by itself.
const EXIT_TIME_LIMIT: u8 = 124;
const EXIT_MEMORY_LIMIT: u8 = 137;
const EXIT_OUTPUT_LIMIT: u8 = 141;

/// Why a report command failed (exit 1).
#[derive(Debug)]
enum ReportError {
    /// manage's address does not resolve.
    Resolve(ResolveError),
    /// The link to manage failed.
    Link(LinkError),
    /// manage asked for its token and the token file cannot be read.
    Token(TokenError),
    /// manage answered with an `<error>`.
    Refused(ErrorCode, String),
    /// manage answered with a message that does not fit here (its name).
    Unexpected(&'static str),
    /// manage challenged the answer to its challenge.
    ChallengedAgain,
    /// A value that must be hex or base64 is not (what it is).
    Malformed(&'static str),
    /// A file to send cannot be read.
    ReadFile(PathBuf, io::Error),
    /// A signal handler cannot be installed.
    Signals(io::Error),
    /// Standard output went away.
    Write(io::Error),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Resolve(e) => e.fmt(f),
            ReportError::Link(e) => e.fmt(f),
            ReportError::Token(e) => write!(
                f,
                "manage asks for its token: {e} (give --token-file: a copy of `token`, or of `submit-token` for run, from manage's state folder)"
            ),
            ReportError::Refused(code, text) => write!(f, "manage answered: {code}: {text}"),
            ReportError::Unexpected(name) => {
                write!(f, "manage answered with an unexpected <{name}>")
            }
            ReportError::ChallengedAgain => f.write_str("manage challenged the answer again"),
            ReportError::Malformed(what) => write!(f, "{what}"),
            ReportError::ReadFile(path, e) => write!(f, "cannot read {}: {e}", path.display()),
            ReportError::Signals(e) => write!(f, "cannot install a signal handler: {e}"),
            ReportError::Write(e) => write!(f, "cannot write: {e}"),
        }
    }
}

impl std::error::Error for ReportError {}

impl From<LinkError> for ReportError {
    fn from(error: LinkError) -> ReportError {
        ReportError::Link(error)
    }
}

fn main() -> ExitCode {
    let cli = match cli::parse::<Cli>("report") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Checked before anything is resolved or connected to: a usage error, like clap's.
    if let Some(seconds) = cli.watch {
        if !(seconds.is_finite() && (0.1..=3600.0).contains(&seconds)) {
            eprintln!("report: --watch takes 0.1 to 3600 seconds, not {seconds}");
            return ExitCode::from(USAGE);
        }
    }
    if let Some(Command::Run(args)) = &cli.command {
        if cli.kill || cli.xml || cli.watch.is_some() {
            eprintln!("report: run cannot be combined with -k, --xml or --watch");
            return ExitCode::from(USAGE);
        }
        return run_program(&cli.server, args, cli.token_file.as_deref());
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("report: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), ReportError> {
    let address = sigma_link::resolve(&cli.server).map_err(ReportError::Resolve)?;
    let mut link = connect(address)?;
    if cli.kill {
        return kill(&mut link, address, cli.token_file.as_deref());
    }
    if let Some(seconds) = cli.watch {
        return watch(&mut link, address, Duration::from_secs_f64(seconds));
    }
    let mut out = io::stdout().lock();
    request_status(&mut link, |raw, status| {
        if cli.xml {
            writeln!(out, "{}", String::from_utf8_lossy(raw))
        } else {
            render(&mut out, address, status, None)
        }
        .map_err(ReportError::Write)
    })?
}

/// The language of a source file, from its extension.
fn language_of(file: &std::path::Path) -> Option<protocol::Language> {
    match file.extension()?.to_str()? {
        "c" => Some(protocol::Language::C),
        "cpp" | "cc" => Some(protocol::Language::Cpp),
        "rs" => Some(protocol::Language::Rust),
        "py" => Some(protocol::Language::Python),
        _ => None,
    }
}

/// `report run`: the exit code is the program's (or says which limit it hit).
fn run_program(server: &str, args: &RunArgs, token_file: Option<&std::path::Path>) -> ExitCode {
    let Some(language) = language_of(&args.file) else {
        eprintln!(
            "report: cannot tell the language of {}: name it .c, .cpp, .cc, .rs or .py",
            args.file.display()
        );
        return ExitCode::from(USAGE);
    };
    if !(args.time_limit.is_finite() && args.time_limit > 0.0 && args.time_limit <= 600.0) {
        eprintln!("report: --time-limit takes more than 0 and at most 600 seconds");
        return ExitCode::from(USAGE);
    }
    if !(1..=16_384).contains(&args.memory_limit) {
        eprintln!("report: --memory-limit takes 1 to 16384 MiB");
        return ExitCode::from(USAGE);
    }
    match submit(server, args, language, token_file) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("report: {message}");
            ExitCode::FAILURE
        }
    }
}

fn submit(
    server: &str,
    args: &RunArgs,
    language: protocol::Language,
    token_file: Option<&std::path::Path>,
) -> Result<ExitCode, ReportError> {
    let read =
        |path: &PathBuf| std::fs::read(path).map_err(|e| ReportError::ReadFile(path.clone(), e));
    let source = read(&args.file)?;
    let input = match &args.stdin {
        Some(path) => read(path)?,
        None => Vec::new(),
    };
    // Base64 carries any bytes (XML text cannot carry NUL, bare CR, invalid UTF-8).
    let (mut source64, mut input64) = (String::new(), String::new());
    protocol::Base64::encode_into(&source, &mut source64);
    protocol::Base64::encode_into(&input, &mut input64);
    let name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let time_limit_ms = (args.time_limit * 1000.0).ceil() as u64;
    let address = sigma_link::resolve(server).map_err(ReportError::Resolve)?;
    let mut link = connect(address)?;
    // The answer comes after the compile and the run: wait for both and a margin.
    let wait = Duration::from_millis(time_limit_ms) + Duration::from_secs(180);
    link.stream()
        .set_read_timeout(Some(wait))
        .map_err(LinkError::Setup)?;
    let schedule = args.schedule;
    let make = |mac: Option<protocol::Hex<'_>>| -> Result<Vec<u8>, ReportError> {
        let program = protocol::Program {
            language,
            name: XmlStr::Plain(&name),
            time_limit_ms,
            memory_limit_mb: args.memory_limit,
            source: protocol::Payload::Base64(
                protocol::Base64::new(&source64).ok_or(ReportError::Malformed("bad base64"))?,
            ),
            stdin: if input.is_empty() {
                None
            } else {
                Some(protocol::Payload::Base64(
                    protocol::Base64::new(&input64).ok_or(ReportError::Malformed("bad base64"))?,
                ))
            },
        };
        let mut out = Vec::new();
        Message::Run(protocol::Run {
            schedule,
            mac,
            program,
        })
        .encode(&mut out);
        Ok(out)
    };
    // Prove the token first, so the source goes over the wire once: ask for a nonce, then
    // send the run with its answer.
    link.send(&Message::ChallengeRequest)?;
    let nonce = link.receive(|_, message| match message {
        Message::Challenge(challenge) => Ok(challenge.nonce.as_str().to_string()),
        other => Err(unexpected(&other)),
    })??;
    let path = submit_token_path(token_file);
    let mac = answer_challenge(&path, &nonce)?;
    let mac = protocol::Hex::new(&mac).ok_or(ReportError::Malformed("a MAC that is not hex"))?;
    link.send_raw(&make(Some(mac))?)?;
    link.receive(|_, message| match message {
        Message::Challenge(_) => Err(ReportError::ChallengedAgain),
        Message::JobResult(result) => Ok(show_result(&result)),
        other => Err(unexpected(&other)),
    })?
}

/// Prints a job's output and says how it ended; returns report's exit code.
fn show_result(result: &protocol::JobResult<'_>) -> ExitCode {
    let who = match (result.compute_id, result.host) {
        (Some(id), Some(host)) => format!("compute {id} on {}", text(host)),
        (Some(id), None) => format!("compute {id}"),
        _ => "no compute".to_string(),
    };
    let mut bytes = Vec::new();
    result.compiler_output.data.decode_into(&mut bytes);
    let mut err = io::stderr().lock();
    let _ = err.write_all(&bytes);
    bytes.clear();
    result.stdout.data.decode_into(&mut bytes);
    let _ = io::stdout()
        .write_all(&bytes)
        .and_then(|()| io::stdout().flush());
    bytes.clear();
    result.stderr.data.decode_into(&mut bytes);
    let _ = err.write_all(&bytes);
    for (name, output) in [
        ("stdout", &result.stdout),
        ("stderr", &result.stderr),
        ("compiler output", &result.compiler_output),
    ] {
        if output.truncated {
            let _ = writeln!(err, "report: the program's {name} was truncated");
        }
    }
    let message = result.message.map(text).unwrap_or_default();
    let status = result.status.as_str();
    let _ = writeln!(
        err,
        "report: ran on {who}: {status}{}{} ({} ms CPU, {} ms wall, {} KiB){}",
        result
            .exit_code
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default(),
        result
            .signal
            .map(|s| format!(", signal {s}"))
            .unwrap_or_default(),
        result.cpu_ms,
        result.wall_ms,
        result.peak_kb,
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        }
    );
    use protocol::JobStatus as S;
    let code = match result.status {
        S::Ok => 0,
        S::RuntimeError => result.exit_code.map_or(1, |c| c.clamp(1, 255) as u8),
        S::Signal => result
            .signal
            .map_or(1, |s| 128u64.saturating_add(s).min(255) as u8),
        S::TimeLimit => {
            let _ = writeln!(err, "report: time limit exceeded");
            EXIT_TIME_LIMIT
        }
        S::MemoryLimit => {
            let _ = writeln!(err, "report: memory limit exceeded");
            EXIT_MEMORY_LIMIT
        }
        S::OutputLimit => {
            let _ = writeln!(err, "report: output limit exceeded");
            EXIT_OUTPUT_LIMIT
        }
        S::CompileError => 1,
        S::InternalError | S::Rejected => 1,
    };
    ExitCode::from(code)
}

/// The cluster token's file, for -k: the one given, else `$SIGMA_TOKEN_FILE`, else the
/// default state folder of a manage started in this folder.
fn token_path(given: Option<&std::path::Path>) -> PathBuf {
    given
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("SIGMA_TOKEN_FILE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("sigma-state/token"))
}

/// The submission token's file, for run: the one given, else `$SIGMA_SUBMIT_TOKEN_FILE`, else
/// the default state folder of a manage started in this folder.
fn submit_token_path(given: Option<&std::path::Path>) -> PathBuf {
    given
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("SIGMA_SUBMIT_TOKEN_FILE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("sigma-state/submit-token"))
}

/// The answer to manage's challenge `nonce`, with the token in the file `path`.
fn answer_challenge(path: &std::path::Path, nonce: &str) -> Result<String, ReportError> {
    let token = token::read(path).map_err(ReportError::Token)?.token;
    token::answer(&token, nonce).ok_or(ReportError::Malformed(
        "manage sent a nonce that is not hex",
    ))
}

fn kill(
    link: &mut Link,
    address: SocketAddr,
    token_file: Option<&std::path::Path>,
) -> Result<(), ReportError> {
    link.send(&Message::Kill(protocol::Kill { mac: None }))?;
    // manage challenges the request: the answer proves we hold its token.
    let nonce = link.receive(|_, message| match message {
        Message::Challenge(challenge) => Ok(Some(challenge.nonce.as_str().to_string())),
        Message::Stopping(stopping) => {
            println!(
                "manage at {address} is shutting the cluster down ({} computes told to stop)",
                stopping.computes
            );
            Ok(None)
        }
        other => Err(unexpected(&other)),
    })??;
    let Some(nonce) = nonce else {
        return Ok(());
    };
    let mac = answer_challenge(&token_path(token_file), &nonce)?;
    let mac = protocol::Hex::new(&mac).ok_or(ReportError::Malformed("a MAC that is not hex"))?;
    link.send(&Message::Kill(protocol::Kill { mac: Some(mac) }))?;
    link.receive(|_, message| match message {
        Message::Stopping(stopping) => {
            println!(
                "manage at {address} is shutting the cluster down ({} computes told to stop)",
                stopping.computes
            );
            Ok(())
        }
        other => Err(unexpected(&other)),
    })?
}

fn watch(link: &mut Link, address: SocketAddr, every: Duration) -> Result<(), ReportError> {
    let stop = sigma_link::stop_flag().map_err(ReportError::Signals)?;
    while !stop.load(Ordering::Relaxed) {
        let mut screen = Vec::new();
        // Home the cursor and clear the screen, then draw.
        screen.extend_from_slice(b"\x1b[H\x1b[2J");
        request_status(link, |_, status| {
            render(&mut screen, address, status, Some(every)).map_err(ReportError::Write)
        })??;
        io::stdout()
            .write_all(&screen)
            .and_then(|()| io::stdout().flush())
            .map_err(ReportError::Write)?;
        let next = Instant::now() + every;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn unexpected(message: &Message<'_>) -> ReportError {
    match message {
        Message::Error(error) => ReportError::Refused(error.code, text(error.message)),
        other => ReportError::Unexpected(other.name()),
    }
}

fn text(value: XmlStr<'_>) -> String {
    let mut out = String::new();
    value.unescape_into(&mut out);
    out
}

/// A link to manage whose reader takes status documents of large clusters.
fn connect(address: SocketAddr) -> Result<Link, LinkError> {
    let limits = Limits {
        // A status document grows with the cluster: 64 MiB holds some 200,000 computes.
        max_message_bytes: 64 << 20,
        max_tokens: 4_000_000,
        ..Limits::default()
    };
    Link::connect(address, TIMEOUT, TIMEOUT, limits)
}

/// Asks for the status and hands it, with its raw bytes, to `show`.
fn request_status<T>(
    link: &mut Link,
    show: impl FnOnce(&[u8], &Status<'_>) -> T,
) -> Result<T, ReportError> {
    link.send(&Message::StatusRequest)?;
    link.receive(|raw, message| match message {
        Message::Status(status) => Ok(show(raw, &status)),
        other => Err(unexpected(&other)),
    })?
}

/// The human view of a status document.
fn render(
    out: &mut impl Write,
    address: SocketAddr,
    status: &Status<'_>,
    watching: Option<Duration>,
) -> io::Result<()> {
    writeln!(out, "sigma at {address}, {}", utc(status.now_ms))?;
    let state = if status.done { "done" } else { "running" };
    writeln!(
        out,
        "search     {} ..= {} ({state})",
        group(status.start),
        group(status.until)
    )?;
    writeln!(
        out,
        "tested     {} numbers; every number below {} is tested",
        group(status.tested),
        group(status.frontier)
    )?;
    writeln!(out, "rate       {} numbers/s", group(status.rate))?;
    if let Some(progress) = progress::describe(status, group) {
        writeln!(out, "progress   {progress}")?;
    }
    if status.checks_passed + status.mismatches > 0 {
        writeln!(
            out,
            "checks     {} double-checks agreed, {} disagreed",
            group(status.checks_passed),
            group(status.mismatches)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "perfect numbers found: {}", status.perfect.len())?;
    for p in &status.perfect {
        writeln!(
            out,
            "  {:>26}  by {} (compute {}) at {}",
            group(p.n),
            text(p.host),
            p.compute_id,
            utc(p.found_ms)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "computes: {}", status.computes.len())?;
    if !status.computes.is_empty() {
        writeln!(
            out,
            "  {:>4}  {:<16} {:>8} {:>7} {:>14}  {:<36} progress",
            "id", "host", "pid", "threads", "numbers/s", "range"
        )?;
    }
    for c in &status.computes {
        let (range, progress) = match c.lease {
            Some(lease) => {
                let span = (lease.hi - lease.lo) as f64;
                let fraction = (lease.done - lease.lo) as f64 / span.max(1.0);
                let shown = if watching.is_some() {
                    bar(fraction)
                } else {
                    format!("{:.0}%", fraction * 100.0)
                };
                (format!("[{}, {})", lease.lo, lease.hi), shown)
            }
            None => ("-".to_string(), String::new()),
        };
        writeln!(
            out,
            "  {:>4}  {:<16} {:>8} {:>7} {:>14}  {:<36} {}",
            c.id,
            text(c.host),
            c.pid,
            c.threads,
            group(c.rate),
            range,
            progress
        )?;
    }
    if !status.flagged.is_empty() {
        writeln!(out)?;
        writeln!(out, "flagged computes: {}", status.flagged.len())?;
        for f in &status.flagged {
            writeln!(
                out,
                "  {} pid {}: {} offences{}; latest: {}",
                text(f.host),
                f.pid,
                f.offences,
                if f.refused { ", refused" } else { "" },
                text(f.reason)
            )?;
        }
    }
    if let Some(every) = watching {
        writeln!(
            out,
            "\nredrawn every {:.1} s; Ctrl-C to stop",
            every.as_secs_f64()
        )?;
    }
    Ok(())
}

/// A 20-cell progress bar with the percentage.
fn bar(fraction: f64) -> String {
    let fraction = fraction.clamp(0.0, 1.0);
    let filled = (fraction * 20.0).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        ".".repeat(20 - filled),
        fraction * 100.0
    )
}

/// 1234567 as "1,234,567".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let (days, time) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by whole 400-year eras of
/// 146,097 days, counted from March so that the leap day falls at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(40_000_000), "40,000,000");
        assert_eq!(group(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn formats_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        // 2000-02-29 12:34:56 UTC, a leap day in a year divisible by 400.
        assert_eq!(utc(951_827_696_000), "2000-02-29 12:34:56 UTC");
        assert_eq!(utc(1_795_219_200_000), "2026-11-21 00:00:00 UTC");
    }

    #[test]
    fn draws_bars() {
        assert_eq!(bar(0.0), "[....................]   0%");
        assert_eq!(bar(0.5), "[##########..........]  50%");
        assert_eq!(bar(2.0), "[####################] 100%");
    }
}
