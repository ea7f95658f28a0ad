//! A small LAN made of Linux network namespaces, for the LAN test: one "switch" namespace
//! holding a bridge, and one namespace per host, each joined to the bridge by a veth pair and
//! given its own address on a private test subnet (`10.203.0.0/24`). The addresses exist only
//! inside these namespaces, which have no route anywhere else, so nothing outside them is ever
//! contacted.
//!
//! Names carry the test process's pid and a count of the LANs it made (`sgm<pid>-<n>-sw`,
//! `sgm<pid>-<n>-h<i>`), so reruns, parallel runs and parallel tests do not collide; namespaces left by an earlier run whose process is gone are deleted
//! first. Everything is torn down when the [`Lan`] is dropped, also when the test panics
//! (deleting a namespace deletes the veths in it). Drop every process started in the
//! namespaces before the `Lan` (declare the `Lan` first): a namespace lives on while a process
//! is in it.
//!
//! This needs root and `ip` (iproute2). Without them, [`Lan::create`] panics with a message
//! saying so: the test fails, it never passes silently.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prefix of every namespace this module creates.
const PREFIX: &str = "sgm";
/// The test subnet's first three octets; host `i` is `10.203.0.(10 + i)`.
const SUBNET: [u8; 3] = [10, 203, 0];

/// One host of the LAN: a namespace with one interface, `eth0`, on the bridge.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name.
    pub netns: String,
    /// Its address on the LAN.
    pub address: Ipv4Addr,
    /// The bridge's port for it, in the switch namespace: setting it down pulls the cable.
    pub port: String,
}

/// The switch namespace and the hosts; torn down on drop.
pub struct Lan {
    /// The namespace holding the bridge `br0` and the hosts' ports.
    pub switch: String,
    /// The hosts, in order.
    pub hosts: Vec<Host>,
    /// Every namespace created so far, deleted on drop.
    created: Vec<String>,
    /// The prefix of its namespaces' names, `sgm<pid>-<n>-`.
    tag: String,
}

/// Runs `ip ARGS`; `Err` with what it printed when it fails.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` ({e}): install iproute2"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS` while building the LAN; a failure fails the test, saying why.
fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("building the test LAN: {e}");
    }
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes namespaces with this module's prefix whose creating process is gone.
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !alive(pid) {
                eprintln!("deleting namespace {name}, left by an earlier run (pid {pid})");
                let _ = ip(&["netns", "delete", name]);
            }
        }
    }
}

impl Lan {
    /// Creates the switch and `hosts` hosts. Panics, saying what is missing, when the machine
    /// cannot: not root, no `ip`, or namespaces refused (a container without the privilege).
    pub fn create(hosts: usize) -> Lan {
        assert!(
            (1..=200).contains(&hosts),
            "between 1 and 200 hosts, not {hosts}"
        );
        // SAFETY: geteuid(2) has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert!(
            euid == 0,
            "the LAN test creates network namespaces and must run as root (it runs as uid {euid}); \
             its tests are ignored in builds made without root (tests/build.rs)"
        );
        if let Err(e) = ip(&["-V"]) {
            panic!("the LAN test needs the `ip` command: {e} (apt-get install -y iproute2)");
        }
        remove_stale();
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Lan {
            switch: format!("{tag}-sw"),
            hosts: Vec::new(),
            created: Vec::new(),
            tag: format!("{tag}-"),
        };
        lan.add_netns(&lan.switch.clone());
        let sw = lan.switch.clone();
        must(&["-n", &sw, "link", "set", "lo", "up"]);
        must(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &sw, "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let netns = format!("{tag}-h{i}");
            lan.add_netns(&netns);
            let port = format!("p{i}");
            let address = Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], 10 + i as u8);
            must(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &netns,
            ]);
            must(&["-n", &sw, "link", "set", &port, "master", "br0"]);
            must(&["-n", &sw, "link", "set", &port, "up"]);
            must(&["-n", &netns, "link", "set", "lo", "up"]);
            let cidr = format!("{address}/24");
            must(&["-n", &netns, "addr", "add", &cidr, "dev", "eth0"]);
            must(&["-n", &netns, "link", "set", "eth0", "up"]);
            lan.hosts.push(Host {
                netns,
                address,
                port,
            });
        }
        eprintln!(
            "test LAN: switch {} and {}",
            lan.switch,
            lan.hosts
                .iter()
                .map(|h| format!("{} = {}", h.netns, h.address))
                .collect::<Vec<_>>()
                .join(", ")
        );
        lan
    }

    fn add_netns(&mut self, name: &str) {
        if let Err(e) = ip(&["netns", "add", name]) {
            panic!(
                "this machine cannot create network namespaces, which the LAN test needs: {e} \
                 (in a container, it needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
            );
        }
        self.created.push(name.to_string());
    }

    /// The prefix of its namespaces' names, for [`leftover`].
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Pulls host `i`'s cable: its bridge port goes down, and nothing it sends arrives (it is
    /// not told: no FIN, no RST).
    pub fn cut(&self, i: usize) {
        must(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &self.hosts[i].port,
            "down",
        ]);
    }

    /// Plugs host `i`'s cable back in.
    pub fn reconnect(&self, i: usize) {
        must(&["-n", &self.switch, "link", "set", &self.hosts[i].port, "up"]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for name in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "delete", name]) {
                eprintln!("tearing the test LAN down: {e}");
            }
        }
    }
}

/// The namespaces whose names start with `tag` ([`Lan::tag`]) now, for checking the teardown.
pub fn leftover(tag: &str) -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(tag))
        .map(str::to_string)
        .collect()
}
