//! Helpers for the fault tests: SIGKILL a process and check it died of it, restart manage on
//! the same state and port, read the durable state (`sigma.db`) read-only, and check what a
//! killed manage must not have lost.
//!
//! The database stores u64 values in SQLite's signed INTEGER by reinterpreting the bits (see
//! manage's `store.rs`); the reads here undo that the same way.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::cluster::{events_of, merged_results, results, StatusDoc};
use crate::{Manage, Process, PERFECT_NUMBERS, SIGKILL};

/// A small deterministic generator (splitmix64) for the tests' random choices. The seed is
/// printed, and `SIGMA_FAULT_SEED` replays the same choices (the timing of the run still
/// varies).
pub struct Rng(u64);

impl Rng {
    /// Seeded from `SIGMA_FAULT_SEED`, or else from the clock and the pid; prints the seed.
    pub fn seeded(test: &str) -> Rng {
        let seed = std::env::var("SIGMA_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            });
        eprintln!("{test}: seed {seed} (SIGMA_FAULT_SEED={seed} repeats the choices)");
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the slight modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }

    /// A duration in `[lo, hi]`, to the millisecond.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

/// How many numbers per second one compute thread scans near `lo` on this machine now, from a
/// timed `compute scan` of 30,000,000 numbers. The machine is shared and its speed varies
/// several times over; the tests size their searches with this so that they last long enough
/// for their faults on an idle machine and not too long on a loaded one.
pub fn numbers_per_second(lo: u64) -> f64 {
    let rate = scan_rate(lo, 30_000_000);
    eprintln!("one thread scans {rate:.0} numbers/s near {lo} now");
    rate
}

/// Numbers per second of `compute scan LO LO+NUMBERS --threads 1`, timed from outside (at
/// most 10 minutes).
pub fn scan_rate(lo: u64, numbers: u64) -> f64 {
    let started = Instant::now();
    let hi = (lo + numbers).to_string();
    let mut scan =
        Process::start_quiet("compute", &["scan", &lo.to_string(), &hi, "--threads", "1"]);
    let status = scan
        .wait_exit(Duration::from_secs(600))
        .expect("the scan ends within 10 minutes");
    assert!(
        status.success(),
        "compute scan failed: {:?}",
        scan.stderr_lines()
    );
    numbers as f64 / started.elapsed().as_secs_f64()
}

/// `numbers` rounded down to a multiple of 1,000,000, and at least `floor`.
pub fn round_size(numbers: f64, floor: u64) -> u64 {
    ((numbers as u64) / 1_000_000 * 1_000_000).max(floor)
}

/// Sends SIGKILL and waits (bounded) until the process is reaped; asserts it died of it.
pub fn sigkill(process: &mut Process) {
    process.signal(SIGKILL);
    let status = process
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("process {} outlived SIGKILL by 10 s", process.pid()));
    assert_eq!(status.signal(), Some(SIGKILL), "{status}");
}

/// Starts manage again on its state folder and on the address it had (so the computes, which
/// reconnect by themselves, find it), with `extra` arguments. Returns the old process, for its
/// log. A port still held for a moment is retried for up to 10 s.
pub fn restart(manage: &mut Manage, extra: &[&str]) -> Process {
    let listen = manage.address.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut process =
            Manage::start_on_state_in(manage.netns.as_deref(), manage.state.path(), &listen, extra);
        if crate::cluster::wait_for_event(&process, "listening", Duration::from_secs(60)).is_some()
        {
            let address = crate::listening_address(&process);
            assert_eq!(
                address, manage.address,
                "manage restarted on another address"
            );
            return std::mem::replace(&mut manage.process, process);
        }
        let status = process.wait_exit(Duration::from_secs(5));
        let lines = process.stderr_lines();
        let port_busy = lines.iter().any(|l| l.contains("cannot listen"));
        assert!(
            port_busy && Instant::now() < deadline,
            "manage did not restart on {listen} ({status:?}): {lines:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// What the restarted manage says it resumed with: the `tested` of its `listening` event, which
/// must say `resumed=1`.
pub fn resumed_tested(manage: &Process) -> u64 {
    let fields = crate::cluster::wait_for_event(manage, "listening", Duration::from_secs(10))
        .expect("a restarted manage says it listens");
    let value = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
    };
    assert_eq!(
        value("resumed"),
        "1",
        "manage resumed its state: {fields:?}"
    );
    value("tested")
        .parse()
        .unwrap_or_else(|e| panic!("bad count in {fields:?}: {e}"))
}

/// The durable state in a state folder, opened read-only.
pub struct StoredState {
    connection: Connection,
}

impl StoredState {
    /// Opens `STATE/sigma.db` read-only (manage may be dead, stopped, or running: WAL lets a
    /// reader in either way).
    pub fn open(state: &Path) -> StoredState {
        let path = state.join("sigma.db");
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()));
        StoredState { connection }
    }

    fn column_pairs(&self, sql: &str) -> Vec<(u64, u64)> {
        let mut statement = self
            .connection
            .prepare(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
            })
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.map(|row| row.unwrap_or_else(|e| panic!("{sql}: {e}")))
            .collect()
    }

    fn column(&self, sql: &str) -> Vec<u64> {
        let mut statement = self
            .connection
            .prepare(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let rows = statement
            .query_map([], |row| row.get::<_, i64>(0).map(|v| v as u64))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.map(|row| row.unwrap_or_else(|e| panic!("{sql}: {e}")))
            .collect()
    }

    /// The completed ranges `[lo, hi)`, by `lo`.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.column_pairs("SELECT lo, hi FROM ranges ORDER BY lo")
    }

    /// The verified perfect numbers, increasing.
    pub fn perfect(&self) -> Vec<u64> {
        self.column("SELECT n FROM perfect ORDER BY n")
    }

    /// The claims not checked yet, increasing.
    pub fn claims(&self) -> Vec<u64> {
        self.column("SELECT n FROM claims ORDER BY n")
    }

    /// The outstanding leases as `(id, lo)`, by id.
    pub fn leases(&self) -> Vec<(u64, u64)> {
        self.column_pairs("SELECT id, lo FROM leases ORDER BY id")
    }
}

/// How many numbers sorted, disjoint ranges hold.
pub fn total(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(lo, hi)| hi - lo).sum()
}

/// Panics unless `ranges` (sorted by `lo`) are non-empty and tile `[start, until]` exactly: the
/// first starts at `start`, each starts where the one before ended (no gap, no overlap), and the
/// last ends at `until + 1`. The message names the first fault.
pub fn assert_tiles(ranges: &[(u64, u64)], start: u64, until: u64) {
    let mut expected = start;
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        assert!(
            lo < hi,
            "stored range {i} [{lo}, {hi}) is empty or reversed"
        );
        assert!(
            lo <= expected,
            "gap in the stored ranges: [{expected}, {lo}) is missing (before range {i} of {})",
            ranges.len()
        );
        assert!(
            lo >= expected,
            "overlap in the stored ranges: range {i} [{lo}, {hi}) starts below {expected}, where the one before ended"
        );
        expected = hi;
    }
    assert_eq!(
        expected,
        until + 1,
        "the stored ranges end at {expected}, not one past {until} ({} ranges)",
        ranges.len()
    );
}

/// Whether sorted, disjoint `ranges` cover all of `[lo, hi)`.
pub fn covers(ranges: &[(u64, u64)], lo: u64, hi: u64) -> bool {
    let mut at = lo;
    for &(a, b) in ranges {
        if at >= hi {
            break;
        }
        if a <= at && at < b {
            at = b;
        }
    }
    at >= hi
}

/// What a running manage had acknowledged at one moment: the results in its event log, and the
/// status it answered after them. Its events and replies go out only after the commit of the
/// loop iteration that made them, and each logged result's iteration ended before the status
/// request was read, so all of this was on disk when the status came back.
#[derive(Debug)]
pub struct Acknowledged {
    /// The results' ranges, merged.
    pub results: Vec<(u64, u64)>,
    /// How many results.
    pub count: usize,
    /// The status answered after them.
    pub status: StatusDoc,
}

/// Takes the event log first, then the status (order matters: see [`Acknowledged`]).
pub fn acknowledged(manage: &Manage) -> Acknowledged {
    let events = events_of(&manage.process);
    let status = manage.status();
    Acknowledged {
        results: merged_results(&events),
        count: results(&events).len(),
        status,
    }
}

/// After manage was killed: the database holds everything it had acknowledged (every logged
/// result's range, at least the tested count and the perfect numbers of the status), and every
/// perfect number inside a stored range is stored too, verified or as a claim (claims go into
/// the same transaction as their result). Returns the stored count.
pub fn assert_nothing_acknowledged_lost(state: &Path, acknowledged: &Acknowledged) -> u64 {
    let stored = StoredState::open(state);
    let ranges = stored.ranges();
    for &(lo, hi) in &acknowledged.results {
        assert!(
            covers(&ranges, lo, hi),
            "results [{lo}, {hi}) were logged before the kill but are not all stored: {ranges:?}"
        );
    }
    let tested = total(&ranges);
    assert!(
        tested >= acknowledged.status.tested,
        "{tested} numbers stored, but {} were reported tested before the kill",
        acknowledged.status.tested
    );
    let perfect = stored.perfect();
    let claims = stored.claims();
    for n in &acknowledged.status.perfect {
        assert!(
            perfect.contains(n),
            "perfect number {n} was reported before the kill but is not stored: {perfect:?}"
        );
    }
    for n in PERFECT_NUMBERS {
        if covers(&ranges, n, n + 1) {
            assert!(
                perfect.contains(&n) || claims.contains(&n),
                "{n} lies in a stored range but is neither a stored perfect number ({perfect:?}) nor a claim ({claims:?})"
            );
        }
    }
    eprintln!(
        "after the kill: {tested} numbers stored in {} ranges (>= {} reported), perfect {perfect:?}, claims {claims:?}, {} leases outstanding; {} results logged before the kill all stored",
        ranges.len(),
        acknowledged.status.tested,
        stored.leases().len(),
        acknowledged.count
    );
    tested
}

/// After the run, with manage stopped: the stored ranges tile `[start, until]` exactly, the
/// stored perfect numbers are `expected`, and no claim is left unchecked.
pub fn assert_final_state(state: &Path, start: u64, until: u64, expected: &[u64]) {
    let stored = StoredState::open(state);
    let ranges = stored.ranges();
    assert_tiles(&ranges, start, until);
    assert_eq!(stored.perfect(), expected, "stored perfect numbers");
    assert_eq!(stored.claims(), Vec::<u64>::new(), "claims left unchecked");
    eprintln!(
        "stored: {} ranges tile [{start}, {until}] exactly; perfect {expected:?}",
        ranges.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_and_covers() {
        assert_tiles(&[(5, 7), (7, 8), (8, 11)], 5, 10);
        assert!(covers(&[(1, 3), (3, 5), (9, 10)], 2, 5));
        assert!(!covers(&[(1, 3), (4, 5)], 2, 5));
        assert!(covers(&[(1, 3)], 2, 2));
        assert!(!covers(&[], 2, 3));
    }

    #[test]
    #[should_panic(expected = "gap in the stored ranges: [7, 8) is missing")]
    fn a_gap_is_named() {
        assert_tiles(&[(5, 7), (8, 11)], 5, 10);
    }

    #[test]
    #[should_panic(expected = "overlap in the stored ranges")]
    fn an_overlap_is_named() {
        assert_tiles(&[(5, 8), (7, 11)], 5, 10);
    }

    #[test]
    #[should_panic(expected = "the stored ranges end at 10")]
    fn a_short_end_is_named() {
        assert_tiles(&[(5, 10)], 5, 10);
    }

    #[test]
    fn the_generator_stays_in_bounds() {
        let mut rng = Rng(42);
        for _ in 0..1000 {
            assert!(rng.below(3) < 3);
            let d = rng.between(Duration::from_secs(2), Duration::from_secs(4));
            assert!((Duration::from_secs(2)..=Duration::from_secs(4)).contains(&d));
        }
    }
}
