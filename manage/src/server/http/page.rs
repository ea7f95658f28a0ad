//! The dashboard: one server-rendered HTML page with inline SVG charts, no external assets.
//! The page is a shell (style, a few lines of script) around a fragment; the script fetches
//! `/fragment` every few seconds and swaps it in, so the browser parses no XML and runs no
//! charting code. Everything shown that came from a compute (host names) is escaped.

use std::fmt::Write;

use manage::scheduler::StatusView;
use manage::Millis;

use super::history::Sample;
use super::history_store::JobRow;

/// What the page shows.
pub struct PageInput<'a> {
    pub view: &'a StatusView<sigma_kernel::Algorithm>,
    pub history: &'a [Sample],
    pub jobs: &'a [JobRow],
}

/// How often the page fetches a new fragment, in milliseconds.
const REFRESH_MS: u32 = 3_000;

const STYLE: &str = "
:root{color-scheme:light dark;--fg:#1d2330;--muted:#667;--line:#2f6fdf;--line2:#d0642b;--card:#f4f6fa;--bg:#fff}
@media (prefers-color-scheme:dark){:root{--fg:#e4e8f0;--muted:#99a;--card:#1c212b;--bg:#11151c;--line:#6ea0ff;--line2:#ff9a5c}}
*{box-sizing:border-box}
body{margin:0;padding:12px;font:15px/1.4 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:1.3em;margin:0 0 8px}h2{font-size:1.05em;margin:0 0 6px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin-bottom:10px}
.card{background:var(--card);border-radius:8px;padding:8px 10px}
.card b{display:block;font-size:1.25em;overflow-wrap:anywhere}
.card span{color:var(--muted);font-size:.85em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,480px),1fr));gap:10px}
section{background:var(--card);border-radius:8px;padding:10px;overflow-x:auto}
svg{width:100%;height:auto;display:block}
svg text{fill:var(--muted);font-size:11px}
svg .axis{stroke:var(--muted);stroke-width:.5}
svg .s0{stroke:var(--line);fill:none;stroke-width:2}
svg .s1{stroke:var(--line2);fill:none;stroke-width:2}
svg .bar{fill:var(--line)}
.legend .k0{color:var(--line)}.legend .k1{color:var(--line2)}
table{border-collapse:collapse;width:100%;font-size:.9em}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid rgba(128,128,128,.25);white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:var(--muted)}
progress{width:100%}
";

/// Refreshes the live part; on a failed fetch it says so and keeps the last figures.
const SCRIPT: &str = "
const live=document.getElementById('live');const note=document.getElementById('note');
async function refresh(){try{const r=await fetch('/fragment',{cache:'no-store'});
if(!r.ok)throw new Error('HTTP '+r.status);live.innerHTML=await r.text();note.textContent='';
live.dataset.refreshed=(+(live.dataset.refreshed||0))+1;}
catch(e){note.textContent='manage unreachable ('+e.message+'); retrying';}}
setInterval(refresh,REFRESH);
";

/// The whole page.
pub fn page(input: &PageInput<'_>) -> String {
    let mut out = String::with_capacity(32 * 1024);
    out.push_str(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>sigma</title><style>",
    );
    out.push_str(STYLE);
    out.push_str(
        "</style></head><body><h1>sigma: the search for perfect numbers</h1>\
         <p id=\"note\" class=\"muted\"></p><div id=\"live\">",
    );
    fragment_into(&mut out, input);
    out.push_str("</div><script>");
    out.push_str(&SCRIPT.replace("REFRESH", &REFRESH_MS.to_string()));
    out.push_str("</script></body></html>\n");
    out
}

/// The live part alone, as `/fragment` serves it.
pub fn fragment(input: &PageInput<'_>) -> String {
    let mut out = String::with_capacity(24 * 1024);
    fragment_into(&mut out, input);
    out
}

fn fragment_into(out: &mut String, input: &PageInput<'_>) {
    let view = input.view;
    cards(out, view);
    out.push_str("<div class=\"grid\">");
    let tested: Vec<(Millis, f64)> = input
        .history
        .iter()
        .map(|s| (s.at_ms, s.tested as f64))
        .collect();
    let frontier: Vec<(Millis, f64)> = input
        .history
        .iter()
        .map(|s| (s.at_ms, s.frontier as f64))
        .collect();
    let rate: Vec<(Millis, f64)> = input.history.iter().map(|s| (s.at_ms, s.rate)).collect();
    out.push_str(
        "<section><h2>Numbers tested and frontier</h2><div class=\"legend\">\
         <span class=\"k0\">&#9632; tested</span> <span class=\"k1\">&#9632; frontier</span></div>",
    );
    line_chart(out, "chart-tested", &[&tested, &frontier]);
    out.push_str("</section><section><h2>Cluster rate (numbers/s)</h2>");
    line_chart(out, "chart-rate", &[&rate]);
    out.push_str("</section>");
    computes(out, view);
    perfect(out, view);
    jobs(out, input.jobs);
    out.push_str("</div>");
    let _ = write!(
        out,
        "<p class=\"muted\">as of {} UTC; {} samples of history</p>",
        time_of_day(view.now_ms),
        input.history.len()
    );
}

fn cards(out: &mut String, view: &StatusView<sigma_kernel::Algorithm>) {
    out.push_str("<div class=\"cards\">");
    let card = |out: &mut String, id: &str, value: &str, what: &str| {
        let _ = write!(
            out,
            "<div class=\"card\"><b id=\"{id}\">{value}</b><span>{what}</span></div>"
        );
    };
    card(out, "tested", &grouped(view.tested), "numbers tested");
    card(out, "frontier", &grouped(view.frontier), "all below tested");
    card(
        out,
        "rate",
        &grouped(view.numbers_per_sec as u64),
        "numbers per second",
    );
    card(
        out,
        "computes",
        &view.computes.len().to_string(),
        "computes connected",
    );
    card(
        out,
        "perfect-count",
        &view.perfect.len().to_string(),
        "perfect numbers",
    );
    // Progress only where the search has an end worth measuring against: the default end,
    // u64's last number, would always read 0%. The ETA prices the numbers left with the cost
    // model (later numbers cost more) over the computes' measured operations per second.
    let progress = if view.done {
        "done".to_string()
    } else if view.until < u64::MAX - 1 && view.size > 0 {
        format!(
            "{:.1}%{}",
            view.progress.done_ppm as f64 / 10_000.0,
            view.progress
                .eta_ms
                .map(|ms| format!(", ETA {}", duration((ms as f64 / 1000.0).ceil())))
                .unwrap_or_default()
        )
    } else {
        "open-ended".to_string()
    };
    card(
        out,
        "progress",
        &progress,
        &format!(
            "of {}..={}",
            grouped(view.start),
            if view.until >= u64::MAX - 1 {
                "∞".to_string()
            } else {
                grouped(view.until)
            }
        ),
    );
    out.push_str("</div>");
}

fn computes(out: &mut String, view: &StatusView<sigma_kernel::Algorithm>) {
    out.push_str("<section><h2>Computes</h2>");
    if view.computes.is_empty() {
        out.push_str("<p class=\"muted\">none connected</p></section>");
        return;
    }
    // One bar per compute, scaled to the fastest.
    let fastest = view
        .computes
        .iter()
        .map(|c| c.numbers_per_sec)
        .fold(0.0, f64::max)
        .max(1.0);
    let row_height = 22;
    let height = row_height * view.computes.len();
    let _ = write!(
        out,
        "<svg id=\"chart-computes\" viewBox=\"0 0 600 {height}\" role=\"img\" \
         aria-label=\"each compute's rate\">"
    );
    for (i, c) in view.computes.iter().enumerate() {
        let y = i * row_height;
        let width = 320.0 * c.numbers_per_sec / fastest;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\">#{} {}</text><rect class=\"bar\" x=\"160\" y=\"{}\" \
             width=\"{width:.1}\" height=\"14\"></rect><text x=\"{:.1}\" y=\"{}\">{}/s</text>",
            y + 15,
            c.id.0,
            escape(&truncate(&c.host, 18)),
            y + 3,
            166.0 + width,
            y + 15,
            grouped(c.numbers_per_sec as u64)
        );
    }
    out.push_str("</svg><table><tr><th>#</th><th>host</th><th class=\"num\">threads</th><th class=\"num\">tested</th><th>lease</th></tr>");
    for c in &view.computes {
        let lease = match &c.lease {
            Some(l) => format!(
                "[{}, {}) {:.0}%{}",
                grouped(l.lo),
                grouped(l.hi),
                100.0 * l.done.saturating_sub(l.lo) as f64 / (l.hi - l.lo).max(1) as f64,
                eta(l.hi.saturating_sub(l.done.max(l.lo)), c.numbers_per_sec)
                    .map(|eta| format!(", {eta} left"))
                    .unwrap_or_default()
            ),
            None => "-".to_string(),
        };
        let _ = write!(
            out,
            "<tr class=\"compute\"><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>",
            c.id.0,
            escape(&c.host),
            c.threads,
            grouped(c.tested),
            lease
        );
    }
    out.push_str("</table></section>");
}

fn perfect(out: &mut String, view: &StatusView<sigma_kernel::Algorithm>) {
    out.push_str("<section><h2>Perfect numbers found</h2>");
    if view.perfect.is_empty() {
        out.push_str("<p class=\"muted\">none yet</p></section>");
        return;
    }
    out.push_str("<table id=\"perfect\"><tr><th class=\"num\">number</th><th>found by</th><th>when (UTC)</th></tr>");
    for p in &view.perfect {
        let _ = write!(
            out,
            "<tr class=\"perfect\"><td class=\"num\">{}</td><td>{} (#{})</td><td>{}</td></tr>",
            p.n,
            escape(&p.host),
            p.compute.0,
            date_time(p.found_ms)
        );
    }
    out.push_str("</table></section>");
}

fn jobs(out: &mut String, jobs: &[JobRow]) {
    out.push_str("<section><h2>Recent jobs</h2>");
    if jobs.is_empty() {
        out.push_str("<p class=\"muted\">no jobs submitted</p></section>");
        return;
    }
    out.push_str("<table><tr><th class=\"num\">job</th><th>status</th><th>compute</th><th>first seen</th><th>last event</th></tr>");
    for job in jobs {
        let compute = job.compute.map_or("-".to_string(), |c| format!("#{c}"));
        let _ = write!(
            out,
            "<tr class=\"job\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            job.id,
            escape(&job.status),
            compute,
            time_of_day(job.first_ms),
            time_of_day(job.last_ms)
        );
    }
    out.push_str("</table></section>");
}

/// A line chart of one or more series over time: a polyline each, with the y axis from 0 to
/// the largest value and the x axis from the first to the last sample.
fn line_chart(out: &mut String, id: &str, series: &[&[(Millis, f64)]]) {
    const W: f64 = 600.0;
    const H: f64 = 200.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 20.0;
    let points = series.iter().map(|s| s.len()).max().unwrap_or(0);
    let _ = write!(
        out,
        "<svg id=\"{id}\" data-points=\"{points}\" viewBox=\"0 0 {W} {H}\" role=\"img\">"
    );
    let first = series.iter().filter_map(|s| s.first()).map(|p| p.0).min();
    let last = series.iter().filter_map(|s| s.last()).map(|p| p.0).max();
    let (Some(first), Some(last)) = (first, last) else {
        out.push_str("<text x=\"10\" y=\"100\">no samples yet</text></svg>");
        return;
    };
    let top = series
        .iter()
        .flat_map(|s| s.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1.0);
    let span = (last - first).max(1) as f64;
    let x = |t: Millis| LEFT + (W - LEFT - 5.0) * (t - first) as f64 / span;
    let y = |v: f64| (H - BOTTOM) - (H - BOTTOM - 10.0) * v / top;
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{0}\" x2=\"{W}\" y2=\"{0}\"></line>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"10\" x2=\"{LEFT}\" y2=\"{0}\"></line>\
         <text x=\"0\" y=\"14\">{1}</text><text x=\"0\" y=\"{0}\">0</text>\
         <text x=\"{LEFT}\" y=\"{5}\">{2}</text><text x=\"{3}\" y=\"{5}\">{4}</text>",
        H - BOTTOM,
        short(top),
        time_of_day(first),
        W - 60.0,
        time_of_day(last),
        H - 4.0
    );
    for (index, s) in series.iter().enumerate() {
        let _ = write!(out, "<polyline class=\"s{index}\" points=\"");
        for &(t, v) in s.iter() {
            let _ = write!(out, "{:.1},{:.1} ", x(t), y(v));
        }
        out.push_str("\"></polyline>");
    }
    out.push_str("</svg>");
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn truncate(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(chars - 1).collect();
        short.push('…');
        short
    }
}

/// 1234567 as "1,234,567".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A value in a few characters for an axis label: 1.2k, 3.4M, 5.6G, ...
fn short(v: f64) -> String {
    const UNITS: [(f64, &str); 5] = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (size, unit) in UNITS {
        if v >= size {
            return format!("{:.1}{unit}", v / size);
        }
    }
    format!("{v:.0}")
}

/// Days since 1970-01-01 as (year, month, day), by the proleptic Gregorian calendar.
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Shift to a year that starts on March 1 in a 400-year era, so leap days come last.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// "HH:MM:SS" of a Unix time in milliseconds, in UTC.
/// How long `left` numbers take at `rate` a second, rounded for people ("2 h 05 min",
/// "4 min 10 s", "12 s"); None without a rate to go by.
fn eta(left: u64, rate: f64) -> Option<String> {
    if !(rate.is_finite() && rate >= 1.0) {
        return None;
    }
    Some(duration((left as f64 / rate).ceil()))
}

/// Whole `seconds` rounded for people, as [`eta`] says them.
fn duration(seconds: f64) -> String {
    if seconds >= 100.0 * 86_400.0 {
        return format!("{:.0} days", seconds / 86_400.0);
    }
    let seconds = seconds as u64;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {:02} s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{} h {:02} min", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{} d {:02} h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

fn time_of_day(ms: Millis) -> String {
    let seconds = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// "YYYY-MM-DD HH:MM:SS" of a Unix time in milliseconds, in UTC.
fn date_time(ms: Millis) -> String {
    let (year, month, day) = civil_date((ms / 86_400_000) as i64);
    format!("{year:04}-{month:02}-{day:02} {}", time_of_day(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_792), (2026, 12, 5));
        assert_eq!(
            date_time(20_427 * 86_400_000 + 3_723_000),
            "2025-12-05 01:02:03"
        );
    }

    #[test]
    fn text_from_computes_cannot_open_a_tag() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }

    #[test]
    fn etas_read_as_people_say_them() {
        assert_eq!(eta(100, 0.0), None);
        assert_eq!(eta(100, f64::NAN), None);
        assert_eq!(eta(0, 10.0).as_deref(), Some("0 s"));
        assert_eq!(eta(125, 10.0).as_deref(), Some("13 s"));
        assert_eq!(eta(2_500, 10.0).as_deref(), Some("4 min 10 s"));
        assert_eq!(eta(75_000, 10.0).as_deref(), Some("2 h 05 min"));
        assert_eq!(eta(1_000_000, 1.0).as_deref(), Some("11 d 13 h"));
        assert_eq!(eta(u64::MAX, 1.0).as_deref(), Some("213503982334601 days"));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn a_chart_has_a_point_per_sample() {
        let mut out = String::new();
        line_chart(&mut out, "c", &[&[(0, 1.0), (5_000, 2.0), (10_000, 4.0)]]);
        assert!(out.contains("data-points=\"3\""), "{out}");
        let points = out.split("points=\"").nth(2).unwrap();
        assert_eq!(
            points.split('"').next().unwrap().split_whitespace().count(),
            3
        );
    }

    #[test]
    fn a_full_history_keeps_the_charts_small() {
        // Every tier full: 5,040 samples, drawn as the page draws them (three series).
        let samples: Vec<(Millis, f64)> = (0..5_040u64)
            .map(|i| (i * 5_000, (i * 1_000_000) as f64))
            .collect();
        let started = std::time::Instant::now();
        let mut out = String::new();
        line_chart(&mut out, "tested", &[&samples, &samples]);
        line_chart(&mut out, "rate", &[&samples]);
        eprintln!(
            "charts of a full history: {} bytes in {:?}",
            out.len(),
            started.elapsed()
        );
        assert!(out.len() < 256 * 1024, "{} bytes", out.len());
    }
}
