//! Fresh namespaces and the private root a stage sees.
//!
//! The supervisor calls [`enter`]: it unshares the mount, pid, network, IPC and UTS namespaces
//! (its next child is pid 1 of the new pid namespace; the supervisor itself stays outside it,
//! so it can still wait for and kill that child), then builds the stage's root on
//! `rootfs`, a root-only empty directory of compute's:
//!
//! ```text
//! /            a small tmpfs, read-only once built
//! /usr         read-only bind of the host's (and /bin, /lib*, /sbin as the host has them:
//!              symlinks into usr/ on a merged-usr system, else read-only binds)
//! /etc         passwd and group made up here (root, nobody), hosts; read-only binds of
//!              ld.so.cache, ld.so.conf(.d) and alternatives (cc -> gcc, for rustc's linker)
//! /root/...    read-only binds of the toolchain prefixes outside /usr (rustup, pyenv), at their
//!              own paths
//! /dev         null, zero, full, random, urandom (binds), fd and std* symlinks, shm
//! /proc        mounted by pid 1 itself ([`enter_root`]), so it shows the new pid namespace
//! /job         the job's directory: read-write, on the job's size-capped tmpfs
//! /tmp         and /dev/shm: read-write, on the same tmpfs (so the cap covers them too)
//! ```
//!
//! Nothing of the host is writable: no /var/tmp, no host /tmp or /dev/shm, no other job's
//! directory. The network namespace has only a loopback interface that is down.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// The generated /etc/passwd: the job reads this, never the host's.
const PASSWD: &str = "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1 localhost\n";
/// Host files of /etc bound read-only when present.
const ETC_BINDS: [&str; 4] = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives"];
/// Host devices bound into /dev.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];
/// Top-level host directories the toolchains load from (symlinks on merged-usr systems).
const TOP: [&str; 6] = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// The stage's host name.
pub(crate) const HOSTNAME: &str = "sigma-job";

/// What the stage's root is made of.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// An empty root-only directory the root tmpfs is mounted on (in the new mount namespace
    /// only).
    pub rootfs: PathBuf,
    /// The job's tmpfs on the host: its `work`, `tmp` and `shm` become /job, /tmp, /dev/shm.
    pub job_fs: PathBuf,
    /// Host directories bound read-only at their own paths (toolchains outside /usr).
    pub binds: Vec<PathBuf>,
}

fn fail(what: &str, path: &Path, error: impl std::fmt::Display) -> String {
    format!("{what} {}: {error}", path.display())
}

/// How a bind mount may be used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    ReadOnly,
    Writable,
    Device,
}

fn bind(source: &Path, target: &Path, usage: Use) -> Result<(), String> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| fail("cannot bind", source, e))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID;
    match usage {
        Use::ReadOnly => flags |= MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
        Use::Writable => flags |= MsFlags::MS_NODEV,
        Use::Device => {}
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| fail("cannot remount", target, e))
}

fn make_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| fail("cannot make", path, e))
}

fn make_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| fail("cannot write", path, e))
}

fn symlink(target: &str, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link).map_err(|e| fail("cannot link", link, e))
}

/// `root` + an absolute host path.
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Unshares the namespaces and builds the root of [`Plan`]; see the module documentation.
/// Must run in a single-threaded process (the supervisor).
pub(crate) fn enter(plan: &Plan) -> Result<(), String> {
    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS,
    )
    .map_err(|e| format!("cannot make namespaces (mount, pid, net, ipc, uts): {e}"))?;
    // Nothing done from here on may reach the host's mount table.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the mounts private: {e}"))?;
    let root = plan.rootfs.as_path();
    mount(
        Some("sigma-root"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,nr_inodes=1024,mode=0755"),
    )
    .map_err(|e| fail("cannot mount a tmpfs on", root, e))?;

    for dir in ["usr", "etc", "dev", "proc", "tmp", "job"] {
        make_dir(&root.join(dir))?;
    }
    bind(Path::new("/usr"), &root.join("usr"), Use::ReadOnly)?;
    for name in TOP {
        let host = Path::new("/").join(name);
        match std::fs::read_link(&host) {
            Ok(target) => symlink(&target.to_string_lossy(), &root.join(name))?,
            Err(_) if host.is_dir() => {
                make_dir(&root.join(name))?;
                bind(&host, &root.join(name), Use::ReadOnly)?;
            }
            Err(_) => {}
        }
    }

    let etc = root.join("etc");
    make_file(&etc.join("passwd"), PASSWD)?;
    make_file(&etc.join("group"), GROUP)?;
    make_file(&etc.join("hosts"), HOSTS)?;
    make_file(&etc.join("hostname"), &format!("{HOSTNAME}\n"))?;
    for name in ETC_BINDS {
        let host = Path::new("/etc").join(name);
        let Ok(meta) = std::fs::metadata(&host) else {
            continue;
        };
        let target = etc.join(name);
        if meta.is_dir() {
            make_dir(&target)?;
        } else {
            make_file(&target, "")?;
        }
        bind(&host, &target, Use::ReadOnly)?;
    }

    for path in &plan.binds {
        let target = inside(root, path);
        make_dir(&target)?;
        bind(path, &target, Use::ReadOnly)?;
    }

    let dev = root.join("dev");
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if host.exists() {
            let target = dev.join(name);
            make_file(&target, "")?;
            bind(&host, &target, Use::Device)?;
        }
    }
    symlink("/proc/self/fd", &dev.join("fd"))?;
    for (fd, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
        symlink(&format!("/proc/self/fd/{fd}"), &dev.join(name))?;
    }
    make_dir(&dev.join("shm"))?;
    bind(&plan.job_fs.join("shm"), &dev.join("shm"), Use::Writable)?;
    bind(&plan.job_fs.join("tmp"), &root.join("tmp"), Use::Writable)?;
    bind(&plan.job_fs.join("work"), &root.join("job"), Use::Writable)?;

    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| fail("cannot make read-only", root, e))
}

/// In pid 1 of the new pid namespace: in a mount namespace of its own, mounts its /proc, makes `rootfs` the root (pivot_root;
/// the old root is detached, so nothing of the host stays reachable) and goes to /job.
pub(crate) fn enter_root(rootfs: &Path) -> Result<(), String> {
    // A mount namespace of pid 1's own: pivot_root moves the root of every process of the
    // namespace that is at the old root, and the supervisor must keep the host's view (its
    // cgroup files).
    unshare(CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make pid 1's mount namespace: {e}"))?;
    let proc = rootfs.join("proc");
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| fail("cannot mount /proc on", &proc, e))?;
    std::env::set_current_dir(rootfs).map_err(|e| fail("cannot enter", rootfs, e))?;
    // pivot_root(".", "."): the old root ends up on top of the new one, then is detached.
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("cannot detach the old root: {e}"))?;
    std::env::set_current_dir("/job").map_err(|e| format!("cannot enter /job: {e}"))?;
    nix::unistd::sethostname(HOSTNAME).map_err(|e| format!("sethostname: {e}"))
}
