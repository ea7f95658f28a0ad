//! `compute`: scan a range locally, benchmark the kernel, or (with no subcommand) work for
//! manage as a client.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use sigma_kernel::Algorithm;

/// Searches for perfect numbers by brute force.
#[derive(Debug, Parser)]
#[command(name = "compute", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// manage's address, HOST[:PORT] (client mode).
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

/// Exit code for usage errors, as clap uses.
const USAGE: u8 = 2;

/// A clap error squeezed onto one line: its message without the usage and help hints.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("compute: {message}")
}

fn main() -> ExitCode {
    // Hidden helper modes of the job sandbox (compute::sandbox): never shown in --help.
    if let Some(code) = compute::sandbox::helper_main(std::env::args_os()) {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            // Help and version go to stdout and are not errors.
            return match error.print() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Err(error) => {
            eprintln!("{}", one_line(&error));
            return ExitCode::from(USAGE);
        }
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
                .map_err(|error| Failure::Output(error.to_string()))
        }
        None => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                .format_timestamp_millis()
                .init();
            compute::client::run(compute::client::Options {
                server: cli.server,
                threads: cli.threads,
                algorithm: cli.algorithm,
                token_file: cli.token_file,
                accept_jobs: cli.accept_jobs,
            })
            .map_err(Failure::Run)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("compute: {message}");
            ExitCode::from(USAGE)
        }
        Err(Failure::Run(message)) => {
            eprintln!("compute: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Output(message)) => {
            eprintln!("compute: cannot write the output: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    /// Bad arguments: exit 2.
    Usage(String),
    /// The run itself failed: exit 1.
    Run(String),
    /// stdout went away: exit 1.
    Output(String),
}

fn run_scan(lo: u64, hi: u64, algorithm: Algorithm, threads: usize) -> Result<(), Failure> {
    if lo == 0 {
        return Err(Failure::Usage("LO must be at least 1".to_owned()));
    }
    if lo > hi {
        return Err(Failure::Usage(format!("LO ({lo}) is above HI ({hi})")));
    }
    let never = AtomicBool::new(false);
    let started = Instant::now();
    let outcome = sigma_kernel::scan(algorithm, lo, hi, threads, &never, None)
        .map_err(|error| Failure::Usage(error.to_string()))?;
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
        .map_err(|error| Failure::Output(error.to_string()))?;
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
