//! `--local N`: computes started on this host beside manage, for the one-command demo.
//!
//! Each compute's standard input is a pipe manage holds open and never writes to, and the
//! compute runs with `--end-with-stdin`: when manage ends, however it ends (SIGKILL included),
//! the kernel closes the pipe and the compute ends too, instead of reconnecting forever.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why `--local` computes cannot be started.
#[derive(Debug)]
pub enum LocalError {
    /// manage cannot find its own executable.
    OwnPath(io::Error),
    /// There is no compute binary beside manage's.
    NoCompute(PathBuf),
    /// A compute did not start.
    Spawn {
        /// The compute binary.
        binary: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl fmt::Display for LocalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalError::OwnPath(source) => write!(f, "cannot find manage's own path: {source}"),
            LocalError::NoCompute(beside) => write!(
                f,
                "--local needs the compute binary beside manage, at {}",
                beside.display()
            ),
            LocalError::Spawn { binary, source } => {
                write!(f, "starting {}: {source}", binary.display())
            }
        }
    }
}

impl std::error::Error for LocalError {}

/// The compute processes manage started itself.
pub struct LocalComputes {
    children: Vec<Child>,
}

fn compute_binary() -> Result<PathBuf, LocalError> {
    let me = std::env::current_exe().map_err(LocalError::OwnPath)?;
    let beside = me.with_file_name("compute");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(LocalError::NoCompute(beside))
    }
}

impl LocalComputes {
    /// Starts `count` computes against `address`, sharing the cores between them.
    pub fn start(
        count: usize,
        address: SocketAddr,
        token_file: &Path,
    ) -> Result<LocalComputes, LocalError> {
        let mut local = LocalComputes {
            children: Vec::new(),
        };
        if count == 0 {
            return Ok(local);
        }
        let binary = compute_binary()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / count).max(1).to_string();
        // A wildcard listen address is reached through loopback.
        let target = if address.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), address.port())
        } else {
            address
        };
        for _ in 0..count {
            let child = Command::new(&binary)
                .arg(target.to_string())
                .args(["--threads", &threads])
                .arg("--token-file")
                .arg(token_file)
                .arg("--end-with-stdin")
                // The write end stays in `Child::stdin` until the child is reaped.
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|source| LocalError::Spawn {
                    binary: binary.clone(),
                    source,
                })?;
            log::info!("started local compute pid {}", child.id());
            local.children.push(child);
        }
        Ok(local)
    }

    /// Waits up to `grace` for the computes to exit on their own (they were told to shut down),
    /// then kills what is left. Every child is reaped.
    pub fn stop(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for child in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        log::info!("local compute pid {} exited: {status}", child.id());
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        log::warn!(
                            "local compute pid {} did not exit in time; killing it",
                            child.id()
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
            // The computes write to the same standard error: keep the lines in order.
            super::log_output::flush();
        }
        self.children.clear();
    }
}

impl Drop for LocalComputes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
