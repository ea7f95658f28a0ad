//! `/metrics`: the Prometheus text format (version 0.0.4), written by hand: a few dozen lines
//! of counters and gauges need no registry, and the test parses the output with Prometheus's
//! own Python parser. Names follow Prometheus's conventions: `sigma_` first, the unit last,
//! counters ending in `_total`, labels of low cardinality (compute ids come and go slowly).

use std::fmt::Write;
use std::time::Duration;

use manage::scheduler::StatusView;

/// Upper bounds of the commit-latency histogram's buckets, in seconds.
const COMMIT_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// What the reactor counts for `/metrics` as it goes.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// Per bucket of [`COMMIT_BUCKETS`], commits that took at most that long (not cumulative).
    commit_buckets: [u64; COMMIT_BUCKETS.len()],
    commit_count: u64,
    commit_seconds: f64,
    pub protocol_received_bytes: u64,
    pub protocol_sent_bytes: u64,
    pub http_received_bytes: u64,
    pub http_sent_bytes: u64,
    /// HTTP responses by status code.
    pub http_responses: Vec<(u16, u64)>,
    /// Page renders: (page, count, total seconds).
    pub renders: Vec<(&'static str, u64, f64)>,
}

impl Telemetry {
    /// A commit of the state database that wrote something took `took`.
    pub fn commit_took(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        self.commit_count += 1;
        self.commit_seconds += seconds;
        if let Some(bucket) = COMMIT_BUCKETS.iter().position(|&le| seconds <= le) {
            self.commit_buckets[bucket] += 1;
        }
    }

    pub fn responded(&mut self, code: u16) {
        match self.http_responses.iter_mut().find(|(c, _)| *c == code) {
            Some((_, count)) => *count += 1,
            None => {
                self.http_responses.push((code, 1));
                self.http_responses.sort_unstable();
            }
        }
    }

    pub fn rendered(&mut self, page: &'static str, took: Duration) {
        match self.renders.iter_mut().find(|(p, _, _)| *p == page) {
            Some((_, count, seconds)) => {
                *count += 1;
                *seconds += took.as_secs_f64();
            }
            None => self.renders.push((page, 1, took.as_secs_f64())),
        }
    }
}

/// Everything `/metrics` shows besides the telemetry.
pub struct MetricsInput<'a> {
    pub view: &'a StatusView<sigma_kernel::Algorithm>,
    pub jobs_queued: usize,
    pub jobs_running: usize,
    /// Jobs that ended, by their final event, from the job log.
    pub jobs_ended: &'a [(String, u64)],
    pub protocol_connections: usize,
    pub http_connections: usize,
    pub telemetry: &'a Telemetry,
}

/// A sample value: Prometheus spells the infinities and NaN its own way.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A label value, escaped as the text format asks (backslash, quote, newline).
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn single(out: &mut String, name: &str, kind: &str, help: &str, v: f64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {}", value(v));
}

/// The whole `/metrics` document.
pub fn render(input: &MetricsInput<'_>) -> String {
    let view = input.view;
    let t = input.telemetry;
    let mut out = String::with_capacity(4096);
    single(
        &mut out,
        "sigma_numbers_tested_total",
        "counter",
        "Distinct numbers tested so far (kept across restarts).",
        view.tested as f64,
    );
    single(
        &mut out,
        "sigma_frontier",
        "gauge",
        "Every number of the search below this one is tested.",
        view.frontier as f64,
    );
    single(
        &mut out,
        "sigma_search_start",
        "gauge",
        "First number of the search.",
        view.start as f64,
    );
    single(
        &mut out,
        "sigma_search_until",
        "gauge",
        "Last number of the search (inclusive).",
        view.until as f64,
    );
    single(
        &mut out,
        "sigma_search_done",
        "gauge",
        "1 once every number of the search is tested.",
        f64::from(u8::from(view.done)),
    );
    single(
        &mut out,
        "sigma_rate_numbers_per_second",
        "gauge",
        "The cluster's measured rate: the sum of the computes' rates.",
        view.numbers_per_sec,
    );
    single(
        &mut out,
        "sigma_computes",
        "gauge",
        "Computes connected.",
        view.computes.len() as f64,
    );
    family(
        &mut out,
        "sigma_compute_rate_numbers_per_second",
        "gauge",
        "Each connected compute's measured rate.",
    );
    for c in &view.computes {
        let _ = writeln!(
            out,
            "sigma_compute_rate_numbers_per_second{{compute=\"{}\",host=\"{}\"}} {}",
            c.id.0,
            label(&c.host),
            value(c.numbers_per_sec)
        );
    }
    single(
        &mut out,
        "sigma_leases",
        "gauge",
        "Live leases (ranges out at a compute).",
        view.computes.iter().filter(|c| c.lease.is_some()).count() as f64,
    );
    single(
        &mut out,
        "sigma_leased_numbers",
        "gauge",
        "Numbers in live leases.",
        view.leased as f64,
    );
    family(
        &mut out,
        "sigma_jobs",
        "gauge",
        "Submitted jobs alive now, by status.",
    );
    let _ = writeln!(out, "sigma_jobs{{status=\"queued\"}} {}", input.jobs_queued);
    let _ = writeln!(
        out,
        "sigma_jobs{{status=\"running\"}} {}",
        input.jobs_running
    );
    family(
        &mut out,
        "sigma_jobs_ended_total",
        "counter",
        "Submitted jobs that ended, by how (from the job log).",
    );
    for (status, count) in input.jobs_ended {
        let _ = writeln!(
            out,
            "sigma_jobs_ended_total{{status=\"{}\"}} {count}",
            label(status)
        );
    }
    single(
        &mut out,
        "sigma_perfect_numbers",
        "gauge",
        "Perfect numbers found and verified.",
        view.perfect.len() as f64,
    );
    single(
        &mut out,
        "sigma_double_checks_passed_total",
        "counter",
        "Double-checked ranges whose checksums agreed.",
        view.checks.passed as f64,
    );
    single(
        &mut out,
        "sigma_double_check_mismatches_total",
        "counter",
        "Double-checked ranges whose checksums differed.",
        view.checks.mismatches as f64,
    );
    family(
        &mut out,
        "sigma_store_commit_seconds",
        "histogram",
        "Time to commit an event batch's changes to the state database (durably).",
    );
    let mut cumulative = 0;
    for (le, count) in COMMIT_BUCKETS.iter().zip(t.commit_buckets) {
        cumulative += count;
        let _ = writeln!(
            out,
            "sigma_store_commit_seconds_bucket{{le=\"{}\"}} {cumulative}",
            value(*le)
        );
    }
    let _ = writeln!(
        out,
        "sigma_store_commit_seconds_bucket{{le=\"+Inf\"}} {}",
        t.commit_count
    );
    let _ = writeln!(
        out,
        "sigma_store_commit_seconds_sum {}",
        value(t.commit_seconds)
    );
    let _ = writeln!(out, "sigma_store_commit_seconds_count {}", t.commit_count);
    family(
        &mut out,
        "sigma_connections",
        "gauge",
        "Open connections: protocol (computes and reports) and http.",
    );
    let _ = writeln!(
        out,
        "sigma_connections{{kind=\"protocol\"}} {}",
        input.protocol_connections
    );
    let _ = writeln!(
        out,
        "sigma_connections{{kind=\"http\"}} {}",
        input.http_connections
    );
    family(
        &mut out,
        "sigma_received_bytes_total",
        "counter",
        "Bytes read from connections.",
    );
    let _ = writeln!(
        out,
        "sigma_received_bytes_total{{kind=\"protocol\"}} {}",
        t.protocol_received_bytes
    );
    let _ = writeln!(
        out,
        "sigma_received_bytes_total{{kind=\"http\"}} {}",
        t.http_received_bytes
    );
    family(
        &mut out,
        "sigma_sent_bytes_total",
        "counter",
        "Bytes written to connections.",
    );
    let _ = writeln!(
        out,
        "sigma_sent_bytes_total{{kind=\"protocol\"}} {}",
        t.protocol_sent_bytes
    );
    let _ = writeln!(
        out,
        "sigma_sent_bytes_total{{kind=\"http\"}} {}",
        t.http_sent_bytes
    );
    family(
        &mut out,
        "sigma_http_responses_total",
        "counter",
        "HTTP responses, by status code.",
    );
    for (code, count) in &t.http_responses {
        let _ = writeln!(out, "sigma_http_responses_total{{code=\"{code}\"}} {count}");
    }
    family(
        &mut out,
        "sigma_http_render_seconds",
        "summary",
        "Time manage spent rendering each kind of page.",
    );
    for (page, count, seconds) in &t.renders {
        let _ = writeln!(
            out,
            "sigma_http_render_seconds_sum{{page=\"{page}\"}} {}",
            value(*seconds)
        );
        let _ = writeln!(
            out,
            "sigma_http_render_seconds_count{{page=\"{page}\"}} {count}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_commit_histogram_counts_each_commit_once() {
        let mut t = Telemetry::default();
        t.commit_took(Duration::from_micros(100));
        t.commit_took(Duration::from_millis(3));
        t.commit_took(Duration::from_secs(10));
        assert_eq!(t.commit_count, 3);
        assert_eq!(t.commit_buckets.iter().sum::<u64>(), 2);
        assert_eq!(t.commit_buckets[0], 1);
        assert_eq!(t.commit_buckets[3], 1);
    }
}
