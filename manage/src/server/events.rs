//! The event log (`--events FILE`): one line per lease or job event, in a stable format meant for
//! programs (the end-to-end tests read it), unlike the log on stderr, which is for people and
//! may change. docs/design.md ("The event log") describes the format; changing it is a change
//! of interface.
//!
//! A line is the Unix time in ms, the event's name, and `key=value` fields, space-separated;
//! values never hold spaces:
//!
//! ```text
//! 1764924049419 assign lease=1 compute=1 lo=1 hi=2291713 predicted-ms=120 check=0
//! ```

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use manage::Millis;

/// One event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// manage listens (the port the kernel chose, for port 0) on the search `start..=until`,
    /// with `tested` numbers done already (`resumed`: from the state of an earlier run).
    Listening {
        address: SocketAddr,
        start: u64,
        until: u64,
        resumed: bool,
        tested: u64,
    },
    /// A lease outstanding at the last stop: its range is back in the pool, and its compute's
    /// result is still taken (as a late one).
    Restored {
        lease: u64,
        compute: u64,
        lo: u64,
        hi: u64,
    },
    /// A lease was issued.
    Assign {
        lease: u64,
        compute: u64,
        lo: u64,
        hi: u64,
        predicted_ms: Millis,
        /// A double-check lease: its range is done already.
        check: bool,
    },
    /// A result was taken (and its lease ended, unless `late`).
    Result {
        lease: u64,
        compute: u64,
        lo: u64,
        hi: u64,
        elapsed_ms: Millis,
        checksum: u64,
        /// How many of `[lo, hi)` were not done before.
        new: u64,
        /// Its lease had ended before (expired, or its compute reconnected).
        late: bool,
    },
    /// A compute's work connection closed: every lease it held ended.
    Left { compute: u64 },
    /// A lease expired: its range went back to the pool.
    Expired {
        lease: u64,
        compute: u64,
        lo: u64,
        hi: u64,
    },
    /// A compute's control connection said it runs jobs.
    AcceptsJobs { compute: u64 },
    /// A step of job `job` (`received`, `queued`, `rejected`, `sent`, `send-failed`,
    /// `failed-over`, `finished`, `failed`, `orphaned`, `dropped`), on `compute` if one is
    /// concerned.
    Job {
        job: u64,
        step: &'a str,
        compute: Option<u64>,
    },
    /// A claimed perfect number was verified and recorded.
    Perfect { n: u64, compute: u64 },
    /// manage stopped: the search's state at the end.
    Stopped {
        tested: u64,
        frontier: u64,
        perfect: &'a [u64],
    },
}

fn flag(value: bool) -> u8 {
    u8::from(value)
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Listening {
                address,
                start,
                until,
                resumed,
                tested,
            } => write!(
                f,
                "listening address={address} start={start} until={until} resumed={} tested={tested}",
                flag(resumed)
            ),
            Event::Restored {
                lease,
                compute,
                lo,
                hi,
            } => write!(f, "restored lease={lease} compute={compute} lo={lo} hi={hi}"),
            Event::Assign {
                lease,
                compute,
                lo,
                hi,
                predicted_ms,
                check,
            } => write!(
                f,
                "assign lease={lease} compute={compute} lo={lo} hi={hi} predicted-ms={predicted_ms} check={}",
                flag(check)
            ),
            Event::Result {
                lease,
                compute,
                lo,
                hi,
                elapsed_ms,
                checksum,
                new,
                late,
            } => write!(
                f,
                "result lease={lease} compute={compute} lo={lo} hi={hi} elapsed-ms={elapsed_ms} checksum={checksum} new={new} late={}",
                flag(late)
            ),
            Event::Left { compute } => write!(f, "left compute={compute}"),
            Event::Expired {
                lease,
                compute,
                lo,
                hi,
            } => write!(f, "expired lease={lease} compute={compute} lo={lo} hi={hi}"),
            Event::AcceptsJobs { compute } => write!(f, "accepts-jobs compute={compute}"),
            Event::Job { job, step, compute } => {
                write!(f, "job id={job} step={step}")?;
                match compute {
                    Some(compute) => write!(f, " compute={compute}"),
                    None => Ok(()),
                }
            }
            Event::Perfect { n, compute } => write!(f, "perfect n={n} compute={compute}"),
            Event::Stopped {
                tested,
                frontier,
                perfect,
            } => {
                write!(f, "stopped tested={tested} frontier={frontier} perfect=")?;
                for (i, n) in perfect.iter().enumerate() {
                    write!(f, "{}{n}", if i == 0 { "" } else { "," })?;
                }
                Ok(())
            }
        }
    }
}

/// Why the event log cannot be opened.
#[derive(Debug)]
pub struct EventsError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for EventsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open the event log {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for EventsError {}

/// Where events go: nowhere (no `--events`), standard output (`-`), or a file, appended to.
/// Lines are buffered and written out at [`EventLog::flush`], which the reactor calls after each
/// commit (before the replies go out) and before it waits.
pub struct EventLog {
    out: Option<Box<dyn Write + Send>>,
    pending: Vec<u8>,
}

impl EventLog {
    /// The log `--events` asks for; `None`: no log.
    pub fn open(target: Option<&Path>) -> Result<EventLog, EventsError> {
        let out: Option<Box<dyn Write + Send>> = match target {
            None => None,
            Some(path) if path == Path::new("-") => Some(Box::new(io::stdout())),
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| EventsError {
                        path: path.to_path_buf(),
                        source,
                    })?;
                Some(Box::new(file))
            }
        };
        Ok(EventLog {
            out,
            pending: Vec::new(),
        })
    }

    /// Adds one event, stamped `at_ms`.
    pub fn record(&mut self, at_ms: Millis, event: Event<'_>) {
        if self.out.is_some() {
            // Writing into a Vec cannot fail.
            let _ = writeln!(self.pending, "{at_ms} {event}");
        }
    }

    /// Drops the lines not written yet: their batch's commit failed, so they did not happen.
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Writes the buffered lines out. A log that cannot be written is given up, with a warning:
    /// it must not stop the search.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(out) = &mut self.out else {
            return;
        };
        if let Err(e) = out.write_all(&self.pending).and_then(|()| out.flush()) {
            log::warn!("cannot write the event log ({e}); no more events are written");
            self.out = None;
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_documented_shape() {
        let lines = [
            Event::Listening {
                address: "127.0.0.1:4242".parse().unwrap(),
                start: 1,
                until: 100,
                resumed: true,
                tested: 40,
            },
            Event::Restored {
                lease: 9,
                compute: 4,
                lo: 41,
                hi: 60,
            },
            Event::Assign {
                lease: 1,
                compute: 2,
                lo: 1,
                hi: 50,
                predicted_ms: 120,
                check: false,
            },
            Event::Result {
                lease: 1,
                compute: 2,
                lo: 1,
                hi: 50,
                elapsed_ms: 130,
                checksum: 77,
                new: 49,
                late: true,
            },
            Event::Left { compute: 2 },
            Event::Expired {
                lease: 3,
                compute: 2,
                lo: 50,
                hi: 60,
            },
            Event::AcceptsJobs { compute: 2 },
            Event::Job {
                job: 7,
                step: "received",
                compute: None,
            },
            Event::Job {
                job: 7,
                step: "sent",
                compute: Some(2),
            },
            Event::Perfect { n: 28, compute: 2 },
            Event::Stopped {
                tested: 100,
                frontier: 101,
                perfect: &[6, 28],
            },
            Event::Stopped {
                tested: 0,
                frontier: 1,
                perfect: &[],
            },
        ]
        .map(|event| event.to_string());
        assert_eq!(
            lines,
            [
                "listening address=127.0.0.1:4242 start=1 until=100 resumed=1 tested=40",
                "restored lease=9 compute=4 lo=41 hi=60",
                "assign lease=1 compute=2 lo=1 hi=50 predicted-ms=120 check=0",
                "result lease=1 compute=2 lo=1 hi=50 elapsed-ms=130 checksum=77 new=49 late=1",
                "left compute=2",
                "expired lease=3 compute=2 lo=50 hi=60",
                "accepts-jobs compute=2",
                "job id=7 step=received",
                "job id=7 step=sent compute=2",
                "perfect n=28 compute=2",
                "stopped tested=100 frontier=101 perfect=6,28",
                "stopped tested=0 frontier=1 perfect=",
            ]
        );
    }

    #[test]
    fn a_file_log_gets_stamped_lines_at_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events");
        let mut log = EventLog::open(Some(&path)).unwrap();
        log.record(5, Event::Left { compute: 1 });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        log.flush();
        log.record(6, Event::Left { compute: 2 });
        log.flush();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "5 left compute=1\n6 left compute=2\n"
        );
    }
}
