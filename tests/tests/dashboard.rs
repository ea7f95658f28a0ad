//! The dashboard manage serves over HTTP (`--http`): the endpoints against a real cluster,
//! `/metrics` read by Prometheus's own parser, hostile HTTP clients, the page in a real
//! browser (headless Chromium) across a restart, and what ten viewers cost manage.
//!
//! Chromium and the Python `prometheus_client` parser are optional on a developer's machine:
//! their tests skip with a one-line reason when they are missing, unless
//! `SIGMA_REQUIRE_BROWSER` is set (CI installs both and sets it).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sigma_tests::raw::{raise_open_files, rss_kib};
use sigma_tests::{eventually, listening_address, workspace_root, Manage, Process, SIGINT};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The address manage's `dashboard on http://ADDR/` line names.
fn dashboard_address(manage: &Process) -> SocketAddr {
    let line = manage
        .wait_for_stderr("dashboard on http://", Duration::from_secs(30))
        .expect("manage says where the dashboard is within 30 s");
    let after = line.split("dashboard on http://").nth(1).expect("marker");
    let address = after.split('/').next().unwrap_or("");
    address
        .parse()
        .unwrap_or_else(|e| panic!("bad dashboard address in {line:?}: {e}"))
}

/// A whole HTTP response: status code, head and body.
struct Response {
    code: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as is on a new connection and reads the response to the end of stream.
fn exchange(address: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response head"))?;
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok(Response {
        code,
        head,
        body: all[split + 4..].to_vec(),
    })
}

fn get(address: SocketAddr, path: &str) -> Response {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    exchange(address, request.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Whether a tool the test needs is missing and may be: prints the reason to skip.
fn skip_without(tool: &str, present: bool) -> bool {
    if present {
        return false;
    }
    assert!(
        std::env::var_os("SIGMA_REQUIRE_BROWSER").is_none(),
        "{tool} is missing and SIGMA_REQUIRE_BROWSER is set"
    );
    eprintln!("skipped: {tool} is not installed (set SIGMA_REQUIRE_BROWSER to make this fail)");
    true
}

fn python_parser_present() -> bool {
    Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Parses `text` with prometheus_client's parser and returns its samples as
/// `(name, labels as k=v sorted and joined by commas, value)`; panics on a parse error.
fn parse_metrics(text: &str) -> Vec<(String, String, f64)> {
    const SCRIPT: &str = "
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(f'{s.name}\\t{labels}\\t{s.value!r}')
";
    let mut python = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    python
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("python3 reads the metrics");
    let output = python.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success(),
        "prometheus_client cannot parse /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut parts = line.split('\t');
            let name = parts.next().unwrap_or("").to_string();
            let labels = parts.next().unwrap_or("").to_string();
            let value = parts.next().unwrap_or("").parse().expect("a number");
            (name, labels, value)
        })
        .collect()
}

fn metric(samples: &[(String, String, f64)], name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map(|s| s.2)
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in {samples:?}"))
}

/// The status document without its `now-ms` attribute (the one thing two reads a moment apart
/// must differ in).
fn without_time(xml: &str) -> String {
    let mut out = String::new();
    for (i, piece) in xml.trim().split(" now-ms=\"").enumerate() {
        if i == 0 {
            out.push_str(piece);
        } else {
            out.push_str(piece.split_once('"').map_or("", |(_, rest)| rest));
        }
    }
    out
}

#[test]
fn the_endpoints_serve_the_cluster_read_only() {
    let manage = Manage::start(&["--http", "127.0.0.1:0", "--until", "10000000"]);
    let http = dashboard_address(&manage.process);
    let _computes = [
        manage.start_compute(&["--threads", "1"]),
        manage.start_compute(&["--threads", "1"]),
    ];
    let done = manage.wait_done(Duration::from_secs(60));
    assert_eq!(done.perfect, vec![6, 28, 496, 8128]);

    let health = get(http, "/healthz");
    assert_eq!((health.code, health.text().as_str()), (200, "ok\n"));

    // /status.xml is report --xml's document. Two reads are a moment apart, and a compute
    // may still be double-checking a range then: equal once nothing moves between them.
    let mut last = (String::new(), String::new());
    let same = eventually(Duration::from_secs(20), || {
        let served = get(http, "/status.xml");
        assert_eq!(served.code, 200);
        assert!(served.head.contains("Content-Type: application/xml"));
        let (exit, stdout, _) = manage.report(&["--xml"]);
        assert!(exit.success());
        last = (
            without_time(&served.text()),
            without_time(&stdout.join("\n")),
        );
        last.0 == last.1
    });
    assert!(same, "/status.xml and report --xml differ: {last:?}");

    let page = get(http, "/");
    assert_eq!(page.code, 200);
    let html = page.text();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for n in ["8128", "<svg id=\"chart-tested\"", "<tr class=\"compute\">"] {
        assert!(html.contains(n), "the page lacks {n}");
    }
    // Nothing external: no URL the browser would fetch besides the fragment.
    assert!(!html.contains("src=") && !html.contains("href="));

    // HEAD: the head of GET, no body.
    let head = exchange(
        http,
        b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .expect("HEAD /");
    assert_eq!(head.code, 200);
    assert!(head.body.is_empty());
    assert!(head.head.contains("Content-Length: "));

    // Keep-alive: two requests on one connection.
    let mut stream = TcpStream::connect(http).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut both = String::new();
    stream.read_to_string(&mut both).unwrap();
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");

    let metrics = get(http, "/metrics");
    assert_eq!(metrics.code, 200);
    assert!(metrics.head.contains("text/plain; version=0.0.4"));
    if skip_without("python3's prometheus_client", python_parser_present()) {
        return;
    }
    let samples = parse_metrics(&metrics.text());
    assert_eq!(metric(&samples, "sigma_numbers_tested_total", ""), 1e7);
    assert_eq!(metric(&samples, "sigma_frontier", ""), 1e7 + 1.0);
    assert_eq!(metric(&samples, "sigma_perfect_numbers", ""), 4.0);
    assert_eq!(metric(&samples, "sigma_computes", ""), 2.0);
    assert_eq!(metric(&samples, "sigma_search_done", ""), 1.0);
    // The rate is the live computes' measured rate: 0 is right once they have nothing to do.
    assert!(metric(&samples, "sigma_rate_numbers_per_second", "") >= 0.0);
    assert!(metric(&samples, "sigma_store_commit_seconds_count", "") > 0.0);
    assert!(metric(&samples, "sigma_received_bytes_total", "kind=protocol") > 0.0);
    assert!(metric(&samples, "sigma_sent_bytes_total", "kind=http") > 0.0);
    assert!(metric(&samples, "sigma_connections", "kind=protocol") >= 4.0);
    assert_eq!(metric(&samples, "sigma_jobs", "status=queued"), 0.0);
    assert!(metric(&samples, "sigma_http_responses_total", "code=200") >= 5.0);
}

#[test]
fn hostile_http_clients_leave_manage_and_its_computes_working() {
    const IDLE: usize = 10_000;
    let limit = raise_open_files(IDLE as u64 + 1024);
    let idle_count = IDLE.min(limit.saturating_sub(256) as usize);
    assert!(idle_count >= 1_000, "open-file limit {limit} is too low");
    let manage = Manage::start(&["--http", "127.0.0.1:0"]);
    let http = dashboard_address(&manage.process);
    let _computes = [
        manage.start_compute(&["--threads", "1"]),
        manage.start_compute(&["--threads", "1"]),
    ];
    let tested = || manage.status().tested;
    // Every compute keeps working: the count grows, and both are still connected.
    let assert_working = |what: &str| {
        let before = tested();
        assert!(
            eventually(Duration::from_secs(60), || tested() > before),
            "{what}: the search stopped"
        );
        assert_eq!(manage.status().computes.len(), 2, "{what}: a compute left");
        assert_eq!(get(http, "/healthz").code, 200, "{what}: /healthz");
        let rss = rss_kib(manage.process.pid());
        eprintln!("{what}: manage VmRSS {rss} KiB");
        assert!(rss < 150 * 1024, "{what}: manage uses {rss} KiB");
    };
    assert_working("at start");

    // Slowloris: a header byte every 300 ms is cut off once 5 s pass without a whole head.
    let mut slow = TcpStream::connect(http).expect("connect");
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let _ = slow.write_all(b"GET / HTTP/1.1\r\nX-Slow: ");
    let mut answer = Vec::new();
    loop {
        let mut buf = [0u8; 1024];
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(_) => {} // the read timeout: send the next byte
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a slow request is still open after 10 s"
        );
        if slow.write_all(b"a").is_err() {
            break;
        }
    }
    let cut_after = started.elapsed();
    eprintln!(
        "slowloris cut off after {cut_after:?} with {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(cut_after >= Duration::from_secs(4), "cut off too early");
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408 "));
    assert_working("after slowloris");

    // A 1 MB header: refused at 8 KiB (431), or reset if manage closes before we stop sending.
    let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend_from_slice(b"\r\n\r\n");
    match exchange(http, &big) {
        Ok(response) => assert_eq!(response.code, 431),
        Err(e) => eprintln!("1 MB header: connection ended without a response: {e}"),
    }
    assert_working("after a 1 MB header");

    // Methods that could change something are refused; so is a body.
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT"] {
        let request = format!("{method} / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        let response = exchange(http, request.as_bytes()).expect(method);
        assert_eq!(response.code, 405, "{method}");
        assert!(response.head.contains("Allow: GET, HEAD"));
    }
    let post = exchange(
        http,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 11\r\n\r\n<shutdown/>",
    )
    .expect("POST");
    assert_eq!(post.code, 405);

    // Paths outside the five routes, traversals included, are 404 and show no file.
    let token = std::fs::read_to_string(manage.token_file()).expect("the token");
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fsigma.db",
        "/token",
        "/sigma.db",
        "//metrics",
        "/\\..\\token",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        match exchange(http, request.as_bytes()) {
            Ok(response) => {
                assert!(
                    response.code == 404 || response.code == 400,
                    "{path}: {}",
                    response.code
                );
                let body = response.text();
                assert!(!body.contains("root:") && !body.contains(token.trim()));
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
    assert_working("after POST and path traversal");

    // 10,000 idle connections: the oldest idle ones are closed to make room, so they cannot
    // lock viewers out, and the protocol side never notices.
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let idle: Vec<TcpStream> = thread::scope(|scope| {
        let openers: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    for _ in 0..idle_count / 8 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Ok(stream) =
                            TcpStream::connect_timeout(&http, Duration::from_secs(5))
                        {
                            mine.push(stream);
                        }
                    }
                    mine
                })
            })
            .collect();
        openers
            .into_iter()
            .flat_map(|o| o.join().expect("an opener"))
            .collect()
    });
    eprintln!(
        "{} of {idle_count} idle HTTP connections opened in {:?}",
        idle.len(),
        started.elapsed()
    );
    assert!(idle.len() >= idle_count * 9 / 10);
    assert_working("with 10,000 idle HTTP connections");
    let metrics = get(http, "/metrics").text();
    let open: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sigma_connections{kind=\"http\"} "))
        .and_then(|v| v.parse().ok())
        .expect("the http connection gauge");
    assert!(open <= 1024.0 + 1.0, "{open} HTTP connections open");
    for stream in &idle {
        let _ = stream.shutdown(Shutdown::Both);
    }
    drop(idle);
    assert_working("after 10,000 idle HTTP connections");
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium with `args` then `url`, in a fresh profile; returns its stdout.
fn run_chromium(browser: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().expect("a profile folder");
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Its own process group, so a hung browser and its helpers are killed together.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().expect("chromium starts");
    let pid = child.id() as i32;
    let (sender, receiver) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(Duration::from_secs(90)) {
        Ok(output) => {
            let output = output.expect("chromium runs");
            assert!(
                output.status.success(),
                "chromium failed: {:?}",
                output.status
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Err(_) => {
            // SAFETY: kill(2) on the browser's own process group, which this test started.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            panic!("chromium did not finish within 90 s");
        }
    }
}

/// The number of points in the polyline of the chart `id` in a rendered DOM.
fn chart_points(dom: &str, id: &str) -> usize {
    let chart = dom
        .split(&format!("<svg id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no chart {id} in the DOM"));
    let chart = chart.split("</svg>").next().unwrap_or("");
    chart.split(" points=\"").nth(1).map_or(0, |p| {
        p.split('"').next().unwrap_or("").split_whitespace().count()
    })
}

#[test]
fn the_dashboard_in_a_real_browser_keeps_its_history_across_a_restart() {
    let Some(browser) = chromium() else {
        skip_without("chromium", false);
        return;
    };
    let mut manage = Manage::start(&["--http", "127.0.0.1:0", "--until", "3000000000"]);
    let http = dashboard_address(&manage.process);
    let mut computes = vec![
        manage.start_compute(&["--threads", "1"]),
        manage.start_compute(&["--threads", "1"]),
    ];
    // Some history first: samples are taken every 5 s.
    assert!(
        eventually(Duration::from_secs(60), || {
            let fragment = get(http, "/fragment").text();
            fragment.contains("33550336") && chart_points(&fragment, "chart-tested") >= 4
        }),
        "no fifth perfect number or no history after 60 s"
    );
    let url = format!("http://{http}/");
    // Virtual time lets the page's refresh timer fire: the DOM is the one after a fetch of
    // /fragment, not only the server's first rendering.
    let dom = run_chromium(
        &browser,
        &["--virtual-time-budget=7000", "--dump-dom"],
        &url,
    );
    for n in ["6", "28", "496", "8128", "33550336"] {
        assert!(
            dom.contains(&format!("<td class=\"num\">{n}</td>")),
            "perfect number {n} not in the DOM"
        );
    }
    assert_eq!(dom.matches("<tr class=\"compute\">").count(), 2);
    assert!(dom.contains("data-refreshed=\""), "the refresh never ran");
    let before_restart = chart_points(&dom, "chart-tested");
    assert!(before_restart >= 4, "{before_restart} points");
    assert!(chart_points(&dom, "chart-rate") >= 4);

    let screenshot = std::env::var_os("SIGMA_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("dashboard.png"));
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(
        &browser,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,900",
            "--hide-scrollbars",
        ],
        &url,
    );
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    eprintln!("screenshot: {} ({} bytes)", screenshot.display(), png.len());

    // Restart manage on the same state: the charts start from the history before.
    for compute in &mut computes {
        compute.signal(SIGINT);
    }
    manage.process.signal(SIGINT);
    manage.process.expect_clean_exit(Duration::from_secs(30));
    for compute in &mut computes {
        let _ = compute.wait_exit(Duration::from_secs(30));
    }
    manage.process = Manage::start_on_state(
        manage.state.path(),
        "127.0.0.1:0",
        &["--http", "127.0.0.1:0"],
    );
    manage.address = listening_address(&manage.process);
    let http = dashboard_address(&manage.process);
    let dom = run_chromium(&browser, &["--dump-dom"], &format!("http://{http}/"));
    let after_restart = chart_points(&dom, "chart-tested");
    eprintln!("chart points: {before_restart} before the restart, {after_restart} after");
    assert!(
        after_restart > before_restart,
        "the history from before the restart is gone: {after_restart} points"
    );
    assert!(dom.contains("<td class=\"num\">33550336</td>"));
}

/// CPU time (user + system) of process `pid` so far, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// manage's CPU share over `window`, as a percentage of one core.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let (cpu_before, started) = (cpu_time(pid), Instant::now());
    thread::sleep(window);
    let cpu = cpu_time(pid) - cpu_before;
    100.0 * cpu.as_secs_f64() / started.elapsed().as_secs_f64()
}

#[test]
fn ten_viewers_a_second_cost_manage_under_5_percent_cpu() {
    const VIEWERS: usize = 10;
    const WINDOW: Duration = Duration::from_secs(20);
    let manage = Manage::start_quiet(&["--http", "127.0.0.1:0"]);
    let http = dashboard_address(&manage.process);
    let _computes = [
        manage.start_compute_quiet(&["--threads", "1"]),
        manage.start_compute_quiet(&["--threads", "1"]),
    ];
    assert!(eventually(Duration::from_secs(30), || manage
        .status()
        .tested
        > 0));
    let pid = manage.process.pid();
    let idle = cpu_share(pid, WINDOW);

    // Each viewer loads the page and its fragment every second, as a browser left open would
    // (the page itself refreshes every 3 s: this is three times its load).
    let stop = AtomicBool::new(false);
    let (busy, served, page_bytes) = thread::scope(|scope| {
        let viewers: Vec<_> = (0..VIEWERS)
            .map(|_| {
                scope.spawn(|| {
                    let (mut served, mut bytes) = (0usize, 0usize);
                    while !stop.load(Ordering::Relaxed) {
                        let tick = Instant::now();
                        for path in ["/", "/fragment"] {
                            let response = get(http, path);
                            assert_eq!(response.code, 200);
                            if path == "/" {
                                bytes = response.body.len();
                            }
                            served += 1;
                        }
                        thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
                    }
                    (served, bytes)
                })
            })
            .collect();
        let busy = cpu_share(pid, WINDOW);
        stop.store(true, Ordering::Relaxed);
        let results: Vec<(usize, usize)> = viewers
            .into_iter()
            .map(|v| v.join().expect("a viewer"))
            .collect();
        let served: usize = results.iter().map(|r| r.0).sum();
        (busy, served, results[0].1)
    });
    let metrics = get(http, "/metrics").text();
    let render = |page: &str, part: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "sigma_http_render_seconds_{part}{{page=\"{page}\"}} "
                ))
            })
            .and_then(|v| v.parse().ok())
            .expect("render time in /metrics")
    };
    let page_ms = 1000.0 * render("page", "sum") / render("page", "count");
    let fragment_ms = 1000.0 * render("fragment", "sum") / render("fragment", "count");
    eprintln!(
        "manage CPU: {idle:.2}% with no viewer, {busy:.2}% with {VIEWERS} viewers loading the page \
         and its fragment every second ({served} responses in {WINDOW:?}); page {page_bytes} \
         bytes, rendered in {page_ms:.3} ms (fragment {fragment_ms:.3} ms) on average"
    );
    assert!(served >= VIEWERS * 2 * 10, "only {served} responses");
    assert!(
        busy < 5.0,
        "manage used {busy:.2}% CPU with {VIEWERS} viewers"
    );
}
