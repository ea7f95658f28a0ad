//! `compute`: scan a range locally, benchmark the kernel, or (with no subcommand) work for
//! manage as a client.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::{Parser, Subcommand};
use compute::client::ClientError;
use compute::priority::Priority;
use sigma_kernel::{Algorithm, ScanError};
use sigma_link::cli;

/// Searches for perfect numbers by brute force.
#[derive(Debug, Parser)]
#[command(name = "compute", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// manage's address, HOST[:PORT] (client mode).
    #[arg(value_parser = sigma_link::server_argument)]
    server: Option<String>,
    /// Worker threads [default: every core].
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
    /// naive, trial or sieve [default: sieve].
    #[arg(long, value_parser = parse_algorithm)]
    algorithm: Option<Algorithm>,
    /// File holding manage's token, to prove it when manage asks (client mode).
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// Also run programs manage sends (`report run`), each in the sandbox beside the search.
    #[arg(long)]
    accept_jobs: bool,
    /// CPU priority of the search threads: idle takes only the time no other program wants
    /// (client mode).
    #[arg(long, value_enum, default_value_t = Priority::Idle)]
    priority: Priority,
    /// End when standard input reaches its end: manage --local passes a pipe, so its computes
    /// end with it, however it ends (client mode).
    #[arg(long)]
    end_with_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Tests [LO, HI) without a server: prints `perfect N` per perfect number, then
    /// `checksum C` (wrapping u64 sum of s(n)) and `count K` (numbers tested).
    Scan {
        /// First number tested (at least 1).
        #[arg(value_parser = parse_number)]
        lo: u64,
        /// One past the last number tested (at most 18446744073709551615).
        #[arg(value_parser = parse_number)]
        hi: u64,
        /// naive, trial or sieve.
        #[arg(long, default_value = "sieve", value_parser = parse_algorithm)]
        algorithm: Algorithm,
        /// Worker threads [default: every core].
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
    },
    /// Prints the timing-loop figure and numbers/s per algorithm near 10^6, 10^9 and 10^12, on
    /// one thread and on every core, and the cost model's predictions against measured times.
    Bench {
        /// Threads for the all-threads rows [default: every core].
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
    },
}

/// Digits only: no sign, no spaces, no underscores; must fit in u64.
fn parse_number(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err("expected a number made of the digits 0-9".to_owned());
    }
    text.parse()
        .map_err(|_| format!("out of range: the largest allowed is {}", u64::MAX))
}

fn parse_threads(text: &str) -> Result<usize, String> {
    match parse_number(text)? {
        0 => Err("at least one thread is needed".to_owned()),
        threads => usize::try_from(threads).map_err(|_| "too many threads".to_owned()),
    }
}

fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    text.parse()
        .map_err(|_| "expected naive, trial or sieve".to_owned())
}

fn every_core() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

fn main() -> ExitCode {
    // Hidden helper modes of the job sandbox (compute::sandbox): never shown in --help.
    if let Some(code) = compute::sandbox::helper_main(std::env::args_os()) {
        return code;
    }
    let cli = match cli::parse::<Cli>("compute") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Some(Command::Scan {
            lo,
            hi,
            algorithm,
            threads,
        }) => run_scan(lo, hi, algorithm, threads.unwrap_or_else(every_core)),
        Some(Command::Bench { threads }) => {
            sigma_kernel::bench::run_report(threads.unwrap_or_else(every_core), &mut io::stdout())
                .map_err(Failure::Output)
        }
        None => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                .format_timestamp_millis()
                .init();
            if cli.end_with_stdin {
                if let Err(error) = compute::stdin_watch::end_with_stdin() {
                    eprintln!("compute: cannot watch standard input: {error}");
                    return ExitCode::FAILURE;
                }
            }
            compute::client::run(compute::client::Options {
                server: cli.server,
                threads: cli.threads,
                algorithm: cli.algorithm,
                token_file: cli.token_file,
                accept_jobs: cli.accept_jobs,
                priority: cli.priority,
            })
            .map_err(Failure::Client)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("compute: {failure}");
            match failure {
                Failure::Range(_) => ExitCode::from(cli::USAGE),
                Failure::Client(_) | Failure::Output(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// Why compute stopped with an error.
#[derive(Debug)]
enum Failure {
    /// `scan` was given a range that cannot be scanned: a usage error, exit 2.
    Range(ScanError),
    /// Client mode stopped for good: exit 1.
    Client(ClientError),
    /// stdout went away: exit 1.
    Output(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Range(ScanError::ZeroLo) => f.write_str("LO must be at least 1"),
            Failure::Range(ScanError::Reversed { lo, hi }) => {
                write!(f, "LO ({lo}) is above HI ({hi})")
            }
            Failure::Range(error) => error.fmt(f),
            Failure::Client(error) => error.fmt(f),
            Failure::Output(error) => write!(f, "cannot write the output: {error}"),
        }
    }
}

fn run_scan(lo: u64, hi: u64, algorithm: Algorithm, threads: usize) -> Result<(), Failure> {
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let outcome =
        sigma_kernel::scan(algorithm, lo, hi, threads, &never, None).map_err(Failure::Range)?;
    let seconds = started.elapsed().as_secs_f64();

    let mut text = String::new();
    for n in &outcome.perfect {
        text.push_str(&format!("perfect {n}\n"));
    }
    let count = outcome.done - outcome.lo;
    text.push_str(&format!("checksum {}\ncount {count}\n", outcome.checksum));
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Failure::Output)?;
    let rate = if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    };
    eprintln!(
        "scanned {count} numbers in {seconds:.3} s: {rate:.0} numbers/s ({algorithm}, {threads} thread{})",
        if threads == 1 { "" } else { "s" }
    );
    Ok(())
}
