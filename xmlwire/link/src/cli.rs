//! Command lines parsed by clap, with its errors on one line: `PROGRAM: message`, exit 2, and
//! clap's suggestions ("a similar argument exists", possible values) kept on that line. Help
//! and version print to stdout and exit 0.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

/// The exit code of a usage error, as clap uses.
pub const USAGE: u8 = 2;

/// The command line, or the code to exit with once help, the version or the usage error has
/// been printed.
pub fn parse<P: Parser>(program: &str) -> Result<P, ExitCode> {
    P::try_parse().map_err(|error| report(program, &error))
}

/// Prints a clap error the way [`parse`] does and returns the exit code.
pub fn report(program: &str, error: &clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        return match error.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    eprintln!("{program}: {}", one_line(&error.render().to_string()));
    ExitCode::from(USAGE)
}

/// clap's rendered error on one line: the message, then each suggestion in parentheses,
/// without the usage and the pointer to --help (the lines from `Usage:` on).
fn one_line(rendered: &str) -> String {
    let mut message = Vec::new();
    let mut tips = Vec::new();
    for line in rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
        .filter(|line| !line.is_empty())
    {
        match line.strip_prefix("tip: ") {
            Some(tip) => tips.push(tip),
            None => message.push(line),
        }
    }
    let mut line = message.join(" ");
    if let Some(bare) = line.strip_prefix("error: ") {
        line = bare.to_owned();
    }
    for tip in tips {
        line.push_str(&format!(" ({tip})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    #[command(name = "probe")]
    struct Probe {
        #[arg(long)]
        threads: Option<u32>,
        #[arg(long, value_parser = ["random", "round-robin"])]
        schedule: Option<String>,
    }

    fn squeezed(args: &[&str]) -> String {
        let error = Probe::try_parse_from(args).unwrap_err();
        one_line(&error.render().to_string())
    }

    #[test]
    fn errors_fit_one_line_and_keep_the_suggestion() {
        let line = squeezed(&["probe", "--thread", "2"]);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("unexpected argument '--thread' found"),
            "{line}"
        );
        assert!(
            line.contains("(a similar argument exists: '--threads')"),
            "{line}"
        );
        assert!(!line.contains("Usage"), "{line}");

        let line = squeezed(&["probe", "--schedule", "round"]);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("invalid value 'round' for '--schedule"),
            "{line}"
        );
        assert!(line.contains("round-robin"), "{line}");

        let line = squeezed(&["probe", "--threads", "x"]);
        assert!(
            line.starts_with("invalid value 'x' for '--threads"),
            "{line}"
        );
    }
}
