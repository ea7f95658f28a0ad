//! The attack suite of the job sandbox: each test submits, with `report run` through a real
//! manage, a program that tries one attack on a compute started with `--accept-jobs` (as root),
//! asserts the attack failed, and then that manage and every compute are still up and
//! searching. docs/design.md ("Jobs and the sandbox") names each test beside its attack.
//!
//! The tests need root (the sandbox does) and skip with a one-line reason without it. They run
//! in parallel, each on a cluster of its own, except the search-speed test, which runs alone.

use sigma_tests::cluster::event_fields;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use sigma_tests::jobs::{can_run_jobs, marker, processes_with, search_rate, JobCluster, Source};
use sigma_tests::Process;

/// The search-speed test takes it for writing (it measures alone); every other test for reading.
static MACHINE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The jobs root every compute of these tests uses (compute's default).
const JOBS_ROOT: &str = "/run/sigma-compute";

/// Mounts of this host under the jobs root that belong to `compute` (its job directories are
/// named `job-<compute pid>-<n>`).
fn job_mounts_of(compute: &Process) -> Vec<String> {
    let prefix = format!("{JOBS_ROOT}/job-{}-", compute.pid());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_20000_deep_directory_tree_is_dropped_without_a_walk() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let run = cluster.run(
        "deep.c",
        r#"#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
int main(void) {
    int depth = 0;
    while (depth < 20000 && mkdir("d", 0700) == 0 && chdir("d") == 0) depth++;
    printf("depth %d\n", depth);
    return 0;
}
"#,
        // Each mkdir's Landlock check walks up to /job: the chain costs seconds of CPU.
        &["--time-limit", "60"],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.said("depth 20000"), "{run:?}");
    // The compute did not crash on the cleanup, and the job's tmpfs is gone from the host.
    cluster.assert_up_and_searching();
    assert!(job_mounts_of(&cluster.computes[0]).is_empty());
    // And it runs the next job.
    let again = cluster.run("hi.py", "print('next')\n", &[]);
    assert!(again.said("next"), "{again:?}");
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn two_jobs_cannot_see_or_swap_each_others_directories() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let target = format!("/etc/{}", marker("swapped"));
    // The writer holds its directory open for a while; the racer, meanwhile, looks for any
    // other job's directory where the old sandbox kept them (/tmp) and anywhere else it can
    // list, and tries to swap what it finds for a symlink to a root-only place.
    let writer = Source::new(
        "writer.py",
        "import time, os\nopen('mine.txt', 'w').write('writer')\ntime.sleep(4)\nprint(open('mine.txt').read(), sorted(os.listdir('.')))\n",
    );
    let racer = Source::new(
        "racer.py",
        &format!(
            r#"import os, time
found = []
deadline = time.time() + 3
while time.time() < deadline:
    for place in ['/tmp', '/run', '/var/tmp', '/dev/shm', '/', '/job/..']:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        for name in names:
            if 'sigma' in name or name.startswith('job-') or name == 'mine.txt':
                found.append(place + '/' + name)
                try:
                    os.rename(place + '/' + name, place + '/' + name + '.old')
                    os.symlink('{target}', place + '/' + name)
                except OSError:
                    pass
print('foreign', len(found), sorted(set(found))[:5])
"#
        ),
    );
    let mut first = cluster.submit(&writer, &["--time-limit", "20"]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = cluster.submit(&racer, &["--time-limit", "20"]);
    let written = JobCluster::finish(&mut first);
    let raced = JobCluster::finish(&mut second);
    assert_eq!(raced.code, Some(0), "{raced:?}");
    assert!(raced.out().starts_with("foreign 0 "), "{raced:?}");
    assert_eq!(written.code, Some(0), "{written:?}");
    assert!(
        written.out().starts_with("writer ['main.py', 'mine.txt']"),
        "{written:?}"
    );
    assert!(!Path::new(&target).exists(), "{target} was created");
    // The jobs root is root's, 0700: no job directory is reachable from outside.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(JOBS_ROOT).expect("the jobs root exists");
    assert!(meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0);
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_job_cannot_register_as_a_compute() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let port = cluster.manage.address.port();
    let run = cluster.run(
        "fake.py",
        &format!(
            r#"import socket
try:
    s = socket.create_connection(('127.0.0.1', {port}), timeout=3)
    s.sendall(b'<hello version="2" role="compute" host="fake" pid="1" threads="64" algorithm="sieve" accept-jobs="1"/>')
    print('connected', s.recv(100))
except OSError as e:
    print('blocked', e.errno)
"#
        ),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.out().starts_with("blocked "), "{run:?}");
    // Manage saw no new compute: still the one.
    let status = cluster.manage.status();
    assert_eq!(status.computes.len(), 1, "{status:?}");
    assert!(!status.computes.iter().any(|c| c.host == "fake"));
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_job_cannot_read_another_jobs_source_or_input() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let secret = marker("secret");
    let input = Source::new("input.txt", &format!("{secret}-stdin\n"));
    let victim = Source::new(
        "victim.py",
        &format!("import sys, time\n# {secret}-source\nline = sys.stdin.readline()\ntime.sleep(4)\nprint('victim done')\n"),
    );
    let spy = Source::new(
        "spy.py",
        &format!(
            r#"import os, time
needle = '{head}' + '{tail}'
hits = set()
def look(path):
    try:
        if os.path.isdir(path):
            for name in os.listdir(path):
                look(os.path.join(path, name))
        elif os.path.getsize(path) < 1 << 20 and needle in open(path, errors='ignore').read():
            hits.add(path)
    except OSError:
        pass
deadline = time.time() + 3
while time.time() < deadline:
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            look('/proc/' + pid + '/cwd')
            look('/proc/' + pid + '/fd')
    for place in ['/tmp', '/var/tmp', '/dev/shm', '/run', '/job']:
        look(place)
    time.sleep(0.2)
print('hits', len(hits), sorted(hits)[:5])
"#,
            // Split, so that the spy's own source does not hold the secret.
            head = &secret[..8],
            tail = &secret[8..],
        ),
    );
    let input_path = input.path.to_str().unwrap().to_owned();
    let mut first = cluster.submit(&victim, &["--stdin", &input_path, "--time-limit", "20"]);
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = cluster.submit(&spy, &["--time-limit", "20"]);
    let spied = JobCluster::finish(&mut second);
    let victim_run = JobCluster::finish(&mut first);
    assert_eq!(spied.code, Some(0), "{spied:?}");
    assert!(spied.out().starts_with("hits 0 "), "{spied:?}");
    assert!(victim_run.said("victim done"), "{victim_run:?}");
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_job_cannot_kill_or_trace_another_job() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let victim = Source::new(
        "victim.py",
        "import time\ntime.sleep(4)\nprint('victim survived')\n",
    );
    let attacker = Source::new(
        "attacker.c",
        r#"#include <stdio.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ptrace.h>
int main(void) {
    int seen = 0, killed = 0, traced = 0;
    for (int round = 0; round < 20; round++) {
        DIR *proc = opendir("/proc");
        struct dirent *entry;
        while (proc && (entry = readdir(proc))) {
            int pid = atoi(entry->d_name);
            /* pid 1 is the sandbox's own init: a signal to it from inside is dropped. */
            if (pid <= 1 || pid == getpid()) continue;
            seen++;
            if (ptrace(PTRACE_ATTACH, pid, 0, 0) == 0) traced++;
            if (kill(pid, SIGKILL) == 0) killed++;
        }
        if (proc) closedir(proc);
        /* Guess pids too: the host's are not in this pid namespace. */
        for (int pid = 2; pid < 40000; pid++)
            if (pid != getpid() && kill(pid, 0) == 0 && kill(pid, SIGKILL) == 0) killed++;
        usleep(100000);
    }
    printf("seen %d killed %d traced %d\n", seen, killed, traced);
    return 0;
}
"#,
    );
    let mut first = cluster.submit(&victim, &["--time-limit", "20"]);
    std::thread::sleep(Duration::from_millis(1000));
    let mut second = cluster.submit(&attacker, &["--time-limit", "20"]);
    let attacked = JobCluster::finish(&mut second);
    let victim_run = JobCluster::finish(&mut first);
    assert_eq!(attacked.code, Some(0), "{attacked:?}");
    // It sees no process but its own (and the sandbox's pid 1).
    let out = attacked.out();
    assert!(out.ends_with("killed 0 traced 0"), "{attacked:?}");
    assert!(victim_run.said("victim survived"), "{victim_run:?}");
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_job_reaches_no_network_not_even_loopback() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let port = cluster.manage.address.port();
    let run = cluster.run(
        "net.py",
        &format!(
            r#"import socket
for family, address in [(socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET, ('1.1.1.1', 53)), (socket.AF_INET6, ('::1', {port}))]:
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(address)
        print('reached', address)
    except OSError as e:
        print('blocked', address[0], e.errno)
for family in [socket.AF_NETLINK, socket.AF_PACKET]:
    try:
        socket.socket(family, socket.SOCK_RAW)
        print('opened', family)
    except OSError as e:
        print('blocked', int(family), e.errno)
a, b = socket.socketpair()
a.sendall(b'x')
print('unix', b.recv(1))
"#
        ),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = run.out();
    assert!(
        !out.contains("reached") && !out.contains("opened"),
        "{run:?}"
    );
    assert_eq!(out.matches("blocked").count(), 5, "{run:?}");
    assert!(run.said("unix b'x'"), "{run:?}");
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn nothing_of_a_job_is_left_in_tmp_var_tmp_or_dev_shm() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let name = marker("left");
    let run = cluster.run(
        "leave.py",
        &format!(
            r#"for place in ['/tmp', '/var/tmp', '/dev/shm']:
    try:
        with open(place + '/{name}', 'wb') as f:
            f.write(b'x' * (4 << 20))
        print('wrote', place)
    except OSError as e:
        print('refused', place, e.errno)
"#
        ),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    // Its own /tmp and /dev/shm take the files (the job's tmpfs); /var/tmp does not exist.
    assert!(
        run.said("wrote /tmp") && run.said("wrote /dev/shm"),
        "{run:?}"
    );
    assert!(run.out().contains("refused /var/tmp"), "{run:?}");
    for place in ["/tmp", "/var/tmp", "/dev/shm"] {
        assert!(!Path::new(place).join(&name).exists(), "left in {place}");
    }
    // The next job starts with an empty /tmp.
    let next = cluster.run(
        "look.py",
        &format!("import os\nprint('left', os.path.exists('/tmp/{name}'), os.listdir('/tmp'))\n"),
        &[],
    );
    assert!(next.said("left False []"), "{next:?}");
    assert!(job_mounts_of(&cluster.computes[0]).is_empty());
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn memory_is_limited_across_all_processes_of_a_job() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    // Four processes of 100 MiB each under a 128 MiB limit: each alone would fit.
    let run = cluster.run(
        "spread.c",
        r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
    for (int i = 0; i < 4; i++) {
        if (fork() == 0) {
            /* volatile: gcc -O2 drops a malloc and memset nobody reads. */
            volatile char *p = malloc(100 << 20);
            for (long j = 0; p && j < (100 << 20); j += 4096) p[j] = 1;
            sleep(5);
            _exit(0);
        }
    }
    int status, all_ok = 1;
    while (wait(&status) > 0) if (!WIFEXITED(status)) all_ok = 0;
    puts(all_ok ? "all fit" : "some were killed");
    return all_ok ? 0 : 1;
}
"#,
        &["--memory-limit", "128", "--time-limit", "20"],
    );
    assert!(!run.said("all fit"), "{run:?}");
    let err = run.err();
    assert!(err.contains("memory-limit"), "{run:?}");
    // The peak report gives is the whole job's, and within the limit.
    let peak: u64 = err
        .split(" ms wall, ")
        .nth(1)
        .and_then(|rest| rest.split(" KiB").next())
        .and_then(|kib| kib.parse().ok())
        .expect("report prints the peak");
    assert!(
        peak > 64 * 1024 && peak <= 129 * 1024,
        "peak {peak} KiB: {run:?}"
    );
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn filling_the_disk_is_enospc_to_the_job_alone() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let run = cluster.run(
        "fill.py",
        r#"import errno
written = 0
try:
    for i in range(1000):
        with open('/tmp/fill%d' % i, 'wb') as f:
            for _ in range(8):
                f.write(b'x' * (1 << 20))
                f.flush()
                written += 1
except OSError as e:
    print('stopped', errno.errorcode[e.errno], 'after', written, 'MiB')
"#,
        &["--time-limit", "20"],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let out = run.out();
    assert!(out.starts_with("stopped ENOSPC after "), "{run:?}");
    let mib: u64 = out
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((32..=64).contains(&mib), "{run:?}");
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_fork_bomb_is_contained() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let name = marker("bomb");
    let run = cluster.run(
        "bomb.c",
        &format!(
            "#include <unistd.h>\nint main(int argc, char **argv) {{\n    if (argc < 2) execl(\"/job/main\", \"main\", \"{name}\", (char *)0);\n    for (;;) fork();\n}}\n"
        ),
        &["--time-limit", "2"],
    );
    assert_eq!(run.code, Some(124), "{run:?}");
    // Every copy carries the marker in its arguments: none is left.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes_with(&name).is_empty() {
        assert!(Instant::now() < deadline, "fork bomb processes are left");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.assert_up_and_searching();
    // The host still forks.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_daemon_does_not_outlive_its_job() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let name = marker("daemon");
    let run = cluster.run(
        "daemon.c",
        &format!(
            r#"#include <stdio.h>
#include <unistd.h>
int main(void) {{
    if (fork() == 0) {{
        setsid();
        if (fork() == 0) {{
            execl("/bin/sh", "sh", "-c", "trap '' HUP TERM; sleep 60", "{name}", (char *)0);
        }}
        _exit(0);
    }}
    sleep(1);
    puts("parent leaves");
    return 0;
}}
"#
        ),
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.said("parent leaves"), "{run:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !processes_with(&name).is_empty() {
        assert!(Instant::now() < deadline, "the daemon outlived its job");
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_compile_error_cannot_print_the_hosts_etc_passwd() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let host = std::fs::read_to_string("/etc/passwd").unwrap();
    // Lines of the host's passwd that the sandbox's own (root and nobody) does not have.
    let private: Vec<&str> = host
        .lines()
        .filter(|l| !l.starts_with("root:") && !l.starts_with("nobody:") && !l.is_empty())
        .collect();
    assert!(
        !private.is_empty(),
        "this host's /etc/passwd has only root and nobody"
    );
    let rust = cluster.run(
        "leak.rs",
        "compile_error!(include_str!(\"/etc/passwd\"));\nfn main() {}\n",
        &["--time-limit", "30"],
    );
    let c = cluster.run(
        "leak.c",
        "#include \"/etc/passwd\"\nint main(void) { return 0; }\n",
        &[],
    );
    for run in [&rust, &c] {
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.err().contains("compile-error"), "{run:?}");
        for line in &private {
            assert!(!run.err().contains(line), "leaked {line:?}: {run:?}");
        }
    }
    // What they did include is the sandbox's made-up file.
    assert!(rust.err().contains("nobody:x:65534"), "{rust:?}");
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn the_search_keeps_its_speed_while_a_job_spins_16_threads() {
    if !can_run_jobs() {
        return;
    }
    // Alone on the machine: nothing else of this suite runs meanwhile.
    let _machine = MACHINE.write().unwrap_or_else(|p| p.into_inner());
    // Every core searches (the default), as a real compute does.
    let mut cluster = JobCluster::start(1, &[]);
    let pid = u64::from(cluster.computes[0].pid());
    let window = Duration::from_secs(15);
    // Let it settle into its first lease.
    std::thread::sleep(Duration::from_secs(3));
    let alone = search_rate(&cluster.manage, pid, window);
    let spinner = Source::new(
        "spin.c",
        r#"#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *spin(void *arg) { volatile unsigned long n = 0; for (;;) n++; return arg; }
int main(void) {
    pthread_t threads[16];
    for (int i = 0; i < 16; i++) pthread_create(&threads[i], 0, spin, 0);
    sleep(60);
    return 0;
}
"#,
    );
    let mut job = cluster.submit(&spinner, &["--time-limit", "40"]);
    // Wait until it runs (compiled and started), then measure.
    let running = sigma_tests::eventually(Duration::from_secs(60), || {
        !processes_with("/job/main").is_empty()
    });
    assert!(running, "the spinning job did not start");
    let with_job = search_rate(&cluster.manage, pid, window);
    let still_running = !processes_with("/job/main").is_empty();
    let ratio = with_job / alone;
    eprintln!(
        "search speed: {alone:.0} numbers/s alone, {with_job:.0} numbers/s while a job spins 16 threads: ratio {ratio:.2}"
    );
    assert!(still_running, "the job ended before the measurement did");
    assert!(ratio >= 0.8, "the search ran at {ratio:.2} of its speed");
    let run = JobCluster::finish(&mut job);
    assert_eq!(run.code, Some(124), "{run:?}");
    cluster.assert_up_and_searching();
}

#[test]
#[cfg_attr(not(sigma_root), ignore = "needs root: the job sandbox")]
fn a_job_with_the_wrong_token_is_refused() {
    if !can_run_jobs() {
        return;
    }
    let _machine = shared();
    let mut cluster = JobCluster::start(1, &["--threads", "1"]);
    let wrong = Source::new("token", &"ab".repeat(32));
    let hello = Source::new("hi.py", "print('hi')\n");
    let address = cluster.manage.address_arg();
    let mut report = Process::start(
        "report",
        &[
            &address,
            "--token-file",
            wrong.path.to_str().unwrap(),
            "run",
            hello.path.to_str().unwrap(),
        ],
    );
    let run = JobCluster::finish(&mut report);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.err().contains("unauthorized"), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(
        !cluster
            .manage
            .process
            .stdout_lines()
            .iter()
            .filter_map(|line| event_fields(line))
            .any(|(name, fields)| name == "job" && fields.contains(&("step", "sent"))),
        "a job went to a compute"
    );
    cluster.assert_up_and_searching();
}
