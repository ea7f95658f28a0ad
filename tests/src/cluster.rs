//! Reading a cluster's state for the end-to-end tests: `report --xml` documents parsed into
//! plain structs, and manage's event log (`--events -`, on its stdout; the format is in
//! docs/design.md) parsed into events, with checks over them: no two live leases ever overlap,
//! and which numbers the results cover.

use std::time::{Duration, Instant};

use crate::{Manage, Process};

/// One `<compute>` of a status document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeDoc {
    /// Its compute id.
    pub id: u64,
    /// Its process id.
    pub pid: u64,
    /// Its host name, from its hello.
    pub host: String,
    /// The address its work connection comes from, `ip:port`.
    pub address: String,
    /// Its lease as `(lo, hi, done)`, when it holds one.
    pub lease: Option<(u64, u64, u64)>,
    /// Numbers it tested since it connected.
    pub tested: u64,
}

/// A `<status>` document, as `report --xml` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusDoc {
    /// Distinct numbers tested.
    pub tested: u64,
    /// Smallest number not yet tested.
    pub frontier: u64,
    /// First number of the search.
    pub start: u64,
    /// Last number of the search (inclusive).
    pub until: u64,
    /// Every number is tested.
    pub done: bool,
    /// The perfect numbers found, as listed.
    pub perfect: Vec<u64>,
    /// The connected computes.
    pub computes: Vec<ComputeDoc>,
}

/// The elements of a flat XML document as `(name, attributes)`, in order; end tags are skipped.
/// Enough for the status document, whose values never hold `<` or `"` unescaped.
fn elements(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for piece in xml.split('<').skip(1) {
        if piece.starts_with('/') {
            continue;
        }
        let body = piece.split('>').next().unwrap_or("").trim_end_matches('/');
        let mut parts = body.splitn(2, char::is_whitespace);
        let name = parts.next().unwrap_or("").to_string();
        let mut attributes = Vec::new();
        let mut rest = parts.next().unwrap_or("");
        while let Some(eq) = rest.find("=\"") {
            let key = rest[..eq].trim().to_string();
            let after = &rest[eq + 2..];
            let end = after
                .find('"')
                .unwrap_or_else(|| panic!("unterminated attribute value in {xml:?}"));
            attributes.push((key, after[..end].to_string()));
            rest = &after[end + 1..];
        }
        out.push((name, attributes));
    }
    out
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn number(attributes: &[(String, String)], key: &str, xml: &str) -> u64 {
    let text = attribute(attributes, key).unwrap_or_else(|| panic!("no {key} in {xml:?}"));
    text.parse()
        .unwrap_or_else(|e| panic!("{key}={text:?} is not a number ({e}) in {xml:?}"))
}

/// Parses a status document; panics (failing the test) if it is not one.
pub fn parse_status(xml: &str) -> StatusDoc {
    let elements = elements(xml);
    let (name, top) = elements
        .first()
        .unwrap_or_else(|| panic!("no element in {xml:?}"));
    assert_eq!(name, "status", "not a status document: {xml:?}");
    let done = match attribute(top, "done") {
        Some("1") => true,
        Some("0") => false,
        other => panic!("bad done flag {other:?} in {xml:?}"),
    };
    let mut status = StatusDoc {
        tested: number(top, "tested", xml),
        frontier: number(top, "frontier", xml),
        start: number(top, "start", xml),
        until: number(top, "until", xml),
        done,
        perfect: Vec::new(),
        computes: Vec::new(),
    };
    for (name, attributes) in &elements[1..] {
        match name.as_str() {
            "perfect" => status.perfect.push(number(attributes, "n", xml)),
            "compute" => {
                let lease = attribute(attributes, "lo").map(|_| {
                    (
                        number(attributes, "lo", xml),
                        number(attributes, "hi", xml),
                        number(attributes, "done", xml),
                    )
                });
                status.computes.push(ComputeDoc {
                    id: number(attributes, "id", xml),
                    pid: number(attributes, "pid", xml),
                    host: attribute(attributes, "host").unwrap_or("").to_string(),
                    address: attribute(attributes, "address").unwrap_or("").to_string(),
                    lease,
                    tested: number(attributes, "tested", xml),
                });
            }
            other => panic!("unexpected <{other}> in {xml:?}"),
        }
    }
    status
}

/// Runs `report ADDRESS --xml` quietly and parses what it prints; `None` if report failed
/// (manage is gone or going).
pub fn report_status(address: &str) -> Option<StatusDoc> {
    report_status_in(None, address)
}

/// [`report_status`] run in the network namespace `netns`, if given.
pub fn report_status_in(netns: Option<&str>, address: &str) -> Option<StatusDoc> {
    let mut report = Process::spawn_in(netns, "report", &[address, "--xml"], |_| {}, false);
    let status = report.wait_exit(Duration::from_secs(20))?;
    if !status.success() {
        return None;
    }
    let text = report.stdout_lines().join("\n");
    Some(parse_status(&text))
}

impl Manage {
    /// Runs `report HOST:PORT --xml` and parses what it prints; `None` if report failed (manage
    /// is gone or going).
    pub fn try_status(&self) -> Option<StatusDoc> {
        report_status_in(self.report_netns(), &self.address_arg())
    }

    /// The status now; panics if report fails.
    pub fn status(&self) -> StatusDoc {
        self.try_status()
            .expect("report --xml succeeds while manage runs")
    }

    /// Polls the status until the search is done, at most `timeout`; returns the last status.
    pub fn wait_done(&self, timeout: Duration) -> StatusDoc {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if status.done {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the search is not done after {timeout:?}: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The status every 200 ms until `enough` holds; panics, saying `what` was awaited, at
    /// `deadline`.
    pub fn poll_status(
        &self,
        deadline: Instant,
        what: &str,
        mut enough: impl FnMut(&StatusDoc) -> bool,
    ) -> StatusDoc {
        loop {
            let status = self.status();
            if enough(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: {status:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits, until `deadline` (at least 5 s from now), for the search of `start..=until` to be
    /// done: exactly every number tested, then (verification runs on a thread, so they may
    /// trail the count by a moment, up to 40 s) exactly its perfect numbers, and `computes`
    /// computes connected. Returns the last status; panics on any difference.
    pub fn wait_exact(
        &self,
        start: u64,
        until: u64,
        computes: usize,
        deadline: Instant,
    ) -> StatusDoc {
        let expected = perfect_between(start, until + 1);
        let within = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(5));
        let status = self.wait_done(within);
        assert_eq!(status.tested, until - start + 1, "tested: {status:?}");
        assert_eq!(status.frontier, until + 1, "frontier: {status:?}");
        let mut last = status;
        let settled = crate::eventually(Duration::from_secs(40), || {
            last = self.status();
            last.perfect == expected && last.computes.len() == computes
        });
        assert!(
            settled,
            "expected perfect numbers {expected:?} and {computes} computes connected: {last:?}"
        );
        assert_eq!(last.tested, until - start + 1, "tested: {last:?}");
        last
    }

    /// Every lease event in manage's event log so far.
    pub fn events(&self) -> Vec<Event> {
        events_of(&self.process)
    }

    /// Waits until manage has assigned compute `id` at least `count` leases; returns the last.
    pub fn wait_for_assign(&self, id: u64, count: usize, timeout: Duration) -> Lease {
        let mut found = None;
        let held = crate::eventually(timeout, || {
            let leases: Vec<Lease> = self
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Assign(lease) if lease.compute == id => Some(lease),
                    _ => None,
                })
                .collect();
            if leases.len() >= count {
                found = leases.last().copied();
                true
            } else {
                false
            }
        });
        assert!(
            held,
            "manage did not assign compute {id} {count} leases within {timeout:?}"
        );
        found.expect("set when the condition held")
    }
}

/// A lease as manage assigned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease id.
    pub lease: u64,
    /// The compute holding it.
    pub compute: u64,
    /// First number.
    pub lo: u64,
    /// One past the last number.
    pub hi: u64,
    /// How long manage predicted it would take, in ms.
    pub predicted_ms: u64,
}

/// A result manage took.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultEvent {
    /// The lease id.
    pub lease: u64,
    /// The compute that sent it.
    pub compute: u64,
    /// First number scanned.
    pub lo: u64,
    /// One past the last number scanned.
    pub hi: u64,
    /// How long the scan took, as the compute measured it.
    pub seconds: f64,
    /// The checksum of `[lo, hi)`.
    pub checksum: u64,
    /// Arrived after the lease ended, or overlapped numbers already done.
    pub late_or_partly_new: bool,
}

/// What manage's event log says about leases.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `assign lease=L compute=C lo=.. hi=.. predicted-ms=.. check=..`
    Assign(Lease),
    /// `result lease=L compute=C lo=.. hi=.. elapsed-ms=.. checksum=.. new=N late=0|1`
    Result(ResultEvent),
    /// `left compute=C`: every lease it held ended.
    Left {
        /// The compute.
        compute: u64,
    },
    /// `expired lease=L ...`
    Expired {
        /// The lease id.
        lease: u64,
    },
}

/// An event line: its name and its `key=value` fields (after the time stamp).
pub fn event_fields(line: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    let mut words = line.split_whitespace();
    words.next()?.parse::<u64>().ok()?;
    let name = words.next()?;
    let fields = words.map(|w| w.split_once('=')).collect::<Option<_>>()?;
    Some((name, fields))
}

/// The value of `key` among an event's fields, parsed.
pub fn field<T: std::str::FromStr>(fields: &[(&str, &str)], key: &str) -> Option<T> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn parse_event(line: &str) -> Option<Event> {
    let (name, fields) = event_fields(line)?;
    let get = |key| field::<u64>(&fields, key);
    match name {
        "assign" => Some(Event::Assign(Lease {
            lease: get("lease")?,
            compute: get("compute")?,
            lo: get("lo")?,
            hi: get("hi")?,
            predicted_ms: get("predicted-ms")?,
        })),
        "result" => {
            let (lo, hi) = (get("lo")?, get("hi")?);
            Some(Event::Result(ResultEvent {
                lease: get("lease")?,
                compute: get("compute")?,
                lo,
                hi,
                seconds: get("elapsed-ms")? as f64 / 1000.0,
                checksum: get("checksum")?,
                late_or_partly_new: get("late")? == 1 || get("new")? < hi - lo,
            }))
        }
        "left" => Some(Event::Left {
            compute: get("compute")?,
        }),
        "expired" => Some(Event::Expired {
            lease: get("lease")?,
        }),
        _ => None,
    }
}

/// The lease events among the lines of manage's event log, in order.
pub fn parse_events(lines: &[String]) -> Vec<Event> {
    lines.iter().filter_map(|l| parse_event(l)).collect()
}

/// The lease events a manage process has written to its event log (its stdout) so far.
pub fn events_of(manage: &Process) -> Vec<Event> {
    parse_events(&manage.stdout_lines())
}

/// The first event line named `name` (e.g. `listening`) of `manage`, waited for up to
/// `timeout`, as its `key=value` fields.
pub fn wait_for_event(
    manage: &Process,
    name: &str,
    timeout: Duration,
) -> Option<Vec<(String, String)>> {
    let line = manage.wait_for_stdout(&format!(" {name} "), timeout)?;
    let (found, fields) = event_fields(&line)?;
    (found == name).then(|| {
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// Replays the events and panics if an assignment ever overlapped a lease still live (not yet
/// ended by its result, its compute leaving, or its expiry). Returns how many were checked.
pub fn assert_live_leases_disjoint(events: &[Event]) -> usize {
    let mut live: Vec<Lease> = Vec::new();
    let mut checked = 0;
    for event in events {
        match event {
            Event::Assign(new) => {
                assert!(new.lo < new.hi, "empty lease {new:?}");
                for old in &live {
                    assert!(
                        new.hi <= old.lo || old.hi <= new.lo,
                        "lease {new:?} overlaps live lease {old:?}"
                    );
                }
                live.push(*new);
                checked += 1;
            }
            Event::Result(result) => live.retain(|l| l.lease != result.lease),
            Event::Left { compute } => live.retain(|l| l.compute != *compute),
            Event::Expired { lease } => live.retain(|l| l.lease != *lease),
        }
    }
    checked
}

/// Asserts that the leases of a status document are pairwise disjoint.
pub fn assert_status_leases_disjoint(status: &StatusDoc) {
    let leases: Vec<(u64, (u64, u64, u64))> = status
        .computes
        .iter()
        .filter_map(|c| c.lease.map(|l| (c.id, l)))
        .collect();
    for (i, (a, (alo, ahi, adone))) in leases.iter().enumerate() {
        assert!(
            alo < ahi && alo <= adone && adone <= ahi,
            "malformed lease of compute {a}: {status:?}"
        );
        for (b, (blo, bhi, _)) in &leases[i + 1..] {
            assert!(
                ahi <= blo || bhi <= alo,
                "computes {a} and {b} hold overlapping leases [{alo}, {ahi}) and [{blo}, {bhi}): {status:?}"
            );
        }
    }
}

/// The results' ranges merged into disjoint, sorted intervals.
pub fn merged_results(events: &[Event]) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Result(r) if r.lo < r.hi => Some((r.lo, r.hi)),
            _ => None,
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// The results of the log, in order.
pub fn results(events: &[Event]) -> Vec<ResultEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Result(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The compute id a compute's log gives itself (`joined manage at ... as compute N`).
pub fn compute_id(compute: &Process, timeout: Duration) -> u64 {
    let line = compute
        .wait_for_stderr(" as compute ", timeout)
        .unwrap_or_else(|| panic!("compute {} did not join within {timeout:?}", compute.pid()));
    let (_, id) = line.rsplit_once(" as compute ").expect("the marker");
    id.trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad compute id in {line:?}: {e}"))
}

/// The perfect numbers in `[lo, hi)`.
pub fn perfect_between(lo: u64, hi: u64) -> Vec<u64> {
    crate::PERFECT_NUMBERS
        .iter()
        .copied()
        .filter(|&n| lo <= n && n < hi)
        .collect()
}

/// What manage's last event says: `stopped tested=N frontier=F perfect=A,B,...`, as
/// `(N, F, perfect numbers)`.
pub fn parse_stopped(line: &str) -> Option<(u64, u64, Vec<u64>)> {
    let (name, fields) = event_fields(line)?;
    if name != "stopped" {
        return None;
    }
    let list: &str = fields.iter().find(|(k, _)| *k == "perfect")?.1;
    let perfect = list
        .split(',')
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((
        field(&fields, "tested")?,
        field(&fields, "frontier")?,
        perfect,
    ))
}

/// The `stopped` event of a manage that exited, parsed; panics if there is none.
pub fn final_state(manage: &Process) -> (u64, u64, Vec<u64>) {
    let line = manage
        .wait_for_stdout(" stopped ", Duration::from_secs(5))
        .expect("manage writes a final `stopped` event");
    parse_stopped(&line).unwrap_or_else(|| panic!("cannot parse {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_status_example() {
        let xml = r#"<status tested="40000000" frontier="40000001" start="1" until="40000000" rate="123456" done="1" now-ms="1700000000000"><perfect n="6" host="node-07" compute-id="3" found-ms="1700000000001"/><compute id="3" host="node-07" address="10.0.0.7:51234" pid="4242" threads="8" algorithm="sieve" rate="50000000" lo="1000" hi="2000" done="1500" tested="123" since-ms="1699999999999"/><compute id="4" host="node-08" address="[::1]:40000" pid="1" threads="2" algorithm="trial" rate="7" tested="0" since-ms="1700000000000"/></status>"#;
        let status = parse_status(xml);
        assert_eq!(status.tested, 40_000_000);
        assert_eq!(status.frontier, 40_000_001);
        assert!(status.done);
        assert_eq!(status.perfect, vec![6]);
        assert_eq!(status.computes.len(), 2);
        assert_eq!(status.computes[0].lease, Some((1000, 2000, 1500)));
        assert_eq!(status.computes[1].lease, None);
        assert_eq!(status.computes[1].pid, 1);
    }

    #[test]
    fn parses_event_lines() {
        let lines: Vec<String> = [
            "1763733828429 listening address=127.0.0.1:4242 start=1 until=40000000 resumed=0 tested=0",
            "1763733828429 assign lease=1 compute=1 lo=1 hi=2291713 predicted-ms=100 check=0",
            "1763733828569 result lease=1 compute=1 lo=1 hi=2291713 elapsed-ms=120 checksum=1693579442933 new=2291712 late=0",
            "1763733828569 result lease=9 compute=2 lo=5 hi=10 elapsed-ms=1500 checksum=7 new=2 late=1",
            "1763733829407 left compute=2",
            "1763733829407 expired lease=4 compute=2 lo=1 hi=2",
            "1763733828574 perfect n=6 compute=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let events = parse_events(&lines);
        assert_eq!(
            events,
            vec![
                Event::Assign(Lease {
                    lease: 1,
                    compute: 1,
                    lo: 1,
                    hi: 2_291_713,
                    predicted_ms: 100,
                }),
                Event::Result(ResultEvent {
                    lease: 1,
                    compute: 1,
                    lo: 1,
                    hi: 2_291_713,
                    seconds: 0.12,
                    checksum: 1_693_579_442_933,
                    late_or_partly_new: false,
                }),
                Event::Result(ResultEvent {
                    lease: 9,
                    compute: 2,
                    lo: 5,
                    hi: 10,
                    seconds: 1.5,
                    checksum: 7,
                    late_or_partly_new: true,
                }),
                Event::Left { compute: 2 },
                Event::Expired { lease: 4 },
            ]
        );
        assert_eq!(merged_results(&events), vec![(1, 2_291_713)]);
    }

    #[test]
    fn parses_the_final_event() {
        let line = "1763733829419 stopped tested=40000000 frontier=40000001 perfect=6,28,496,8128,33550336";
        assert_eq!(
            parse_stopped(line),
            Some((40_000_000, 40_000_001, vec![6, 28, 496, 8128, 33_550_336]))
        );
        assert_eq!(
            parse_stopped("1 stopped tested=0 frontier=1 perfect="),
            Some((0, 1, vec![]))
        );
    }

    #[test]
    #[should_panic(expected = "overlaps live lease")]
    fn overlapping_live_leases_are_caught() {
        let lease = |lease, compute, lo, hi| {
            Event::Assign(Lease {
                lease,
                compute,
                lo,
                hi,
                predicted_ms: 0,
            })
        };
        // Disjoint, then reissued after its holder left: fine. Then an overlap: caught.
        let fine = [
            lease(1, 1, 1, 10),
            lease(2, 2, 10, 20),
            Event::Left { compute: 1 },
            lease(3, 2, 1, 10),
        ];
        assert_eq!(assert_live_leases_disjoint(&fine), 3);
        assert_live_leases_disjoint(&[lease(1, 1, 1, 10), lease(2, 2, 9, 20)]);
    }
}
