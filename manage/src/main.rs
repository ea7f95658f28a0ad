//! manage: sigma's server. One thread, one mio poll: it hands every compute a range of numbers
//! sized to take about the target time on that compute, tracks them, keeps the results, and
//! shuts the cluster down cleanly on SIGINT, SIGQUIT, SIGHUP or SIGTERM.
#![forbid(unsafe_code)]

mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// sigma's server: hands out ranges of numbers to computes and gathers the perfect numbers.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Address to listen on, for computes and report.
    #[arg(long, default_value = "0.0.0.0:8128", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// First number of the search (default 1; a resumed state keeps its own).
    #[arg(long, value_name = "N", value_parser = parse_number)]
    start: Option<u64>,
    /// Last number of the search, inclusive (default: as far as u64 reaches; a resumed state
    /// keeps its own).
    #[arg(long, value_name = "N", value_parser = parse_number)]
    until: Option<u64>,
    /// How long each range should take on its compute, in seconds.
    #[arg(long, default_value_t = 15.0, value_name = "S")]
    target_seconds: f64,
    /// Shut the cluster down and exit 0 once every number is tested.
    #[arg(long)]
    exit_when_done: bool,
    /// Also start N computes on this host (the compute binary beside this one).
    #[arg(long, default_value_t = 0, value_name = "N")]
    local: usize,
    /// Folder for the durable state (created if missing).
    #[arg(long, default_value = "sigma-state", value_name = "DIR")]
    state: PathBuf,
    /// The shared secret (default: `token` in the state folder, created on first start).
    /// report -k and job submissions always need it.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Computes must prove they hold the token before they get work.
    #[arg(long)]
    require_token: bool,
    /// Share of completed ranges computed again by another compute to compare checksums
    /// (0 turns double-checking off).
    #[arg(long, default_value_t = 0.01, value_name = "FRACTION")]
    double_check: f64,
    /// How long a shutdown waits for the computes' last partial results, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    shutdown_grace: f64,
    /// Shortest lease, in seconds: a lease lasts 3 times its predicted time, but at least
    /// this; after it the range may go to another compute.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    lease_floor: f64,
    /// Connections the kernel may hold waiting to be accepted (default: the connection cap;
    /// the kernel lowers it to net.core.somaxconn).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    listen_backlog: Option<u32>,
    /// Append the event log to FILE (`-`: standard output): one line per lease or job event, in a
    /// stable format for programs (see docs/design.md).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Serve the dashboard, /metrics, /status.xml and /healthz over HTTP on ADDR:PORT
    /// (`off`: not at all; 0.0.0.0:8129 shares it on the network). Read-only. Without this
    /// option, a busy default port only turns the dashboard off.
    #[arg(long, value_name = "ADDR:PORT|off", value_parser = server::HttpListen::parse)]
    http: Option<server::HttpListen>,
}

/// Strict decimal: digits only, no sign, no leading zeros, no overflow.
fn parse_number(text: &str) -> Result<u64, String> {
    let well_formed = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if !well_formed {
        return Err(format!("{text:?} is not a plain decimal number"));
    }
    text.parse()
        .map_err(|_| format!("{text} is larger than {}", u64::MAX))
}

/// A command line that parses but asks for something manage cannot do (exit 2).
#[derive(Debug)]
enum UsageError {
    StartIsZero,
    UntilTooLarge,
    UntilBelowStart { start: u64, until: u64 },
    Seconds { option: &'static str, value: f64 },
    Share(f64),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::StartIsZero => f.write_str("--start must be at least 1"),
            UsageError::UntilTooLarge => write!(f, "--until can be at most {}", u64::MAX - 1),
            UsageError::UntilBelowStart { start, until } => {
                write!(f, "--until {until} is below --start {start}")
            }
            UsageError::Seconds { option, value } => write!(
                f,
                "{option} takes more than 0 and at most 86400 seconds, not {value}"
            ),
            UsageError::Share(value) => {
                write!(f, "--double-check takes a share from 0 to 1, not {value}")
            }
        }
    }
}

fn seconds(value: f64, option: &'static str) -> Result<Duration, UsageError> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(UsageError::Seconds { option, value })
    }
}

fn config_from(cli: Cli) -> Result<server::Config, UsageError> {
    if cli.start == Some(0) {
        return Err(UsageError::StartIsZero);
    }
    // The largest number a half-open u64 range [lo, hi) can reach.
    if cli.until == Some(u64::MAX) {
        return Err(UsageError::UntilTooLarge);
    }
    if let (Some(start), Some(until)) = (cli.start, cli.until) {
        if until < start {
            return Err(UsageError::UntilBelowStart { start, until });
        }
    }
    Ok(server::Config {
        listen: cli.listen,
        listen_backlog: cli.listen_backlog.map(|n| n as usize),
        start: cli.start,
        until: cli.until,
        state_dir: cli.state,
        token_file: cli.token_file,
        require_token: cli.require_token,
        double_check: if (0.0..=1.0).contains(&cli.double_check) {
            cli.double_check
        } else {
            return Err(UsageError::Share(cli.double_check));
        },
        target: seconds(cli.target_seconds, "--target-seconds")?,
        exit_when_done: cli.exit_when_done,
        local_computes: cli.local,
        shutdown_grace: seconds(cli.shutdown_grace, "--shutdown-grace")?,
        lease_floor: seconds(cli.lease_floor, "--lease-floor")?,
        events: cli.events,
        http: cli.http.unwrap_or(server::HttpListen::Default(
            server::DEFAULT_HTTP
                .parse()
                .expect("the default dashboard address parses"),
        )),
    })
}

fn main() -> ExitCode {
    let cli = match sigma_link::cli::parse::<Cli>("manage") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // The target is a pipe to env_logger, which then styles only when told to: as it would
    // for standard error itself.
    let style = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        env_logger::WriteStyle::Always
    } else {
        env_logger::WriteStyle::Never
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(
            server::log_output::TickBufferedStderr,
        )));
    if std::env::var_os("RUST_LOG_STYLE").is_none() {
        logger.write_style(style);
    }
    logger.init();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        server::log_output::flush();
        default_hook(info);
    }));
    let config = match config_from(cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("manage: {message}");
            return ExitCode::from(sigma_link::cli::USAGE);
        }
    };
    let outcome = server::run(config);
    server::log_output::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, not a log line too: both would go to stderr.
            eprintln!("manage: {error}");
            ExitCode::FAILURE
        }
    }
}
