//! Marks the build `sigma_root` when it runs as root. Tests that need root (network namespaces)
//! carry `#[cfg_attr(not(sigma_root), ignore = "needs root: ...")]`, so for anyone else libtest
//! skips them, prints each one's reason and counts them in its summary ("N ignored"), and the
//! README's test command passes for any user. CI sets `SIGMA_REQUIRE_ROOT=1`: a build without
//! root then fails, so a green CI run means these tests ran.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sigma_root)");
    // Who builds is not a file cargo can watch: rebuild when the user or the demand changes.
    for variable in ["USER", "SUDO_UID", "SIGMA_REQUIRE_ROOT"] {
        println!("cargo::rerun-if-env-changed={variable}");
    }
    let root = effective_uid() == Some(0);
    if root {
        println!("cargo::rustc-cfg=sigma_root");
    } else if std::env::var_os("SIGMA_REQUIRE_ROOT").is_some_and(|v| v == "1") {
        panic!(
            "SIGMA_REQUIRE_ROOT=1, but the tests are built by uid {:?}, not root",
            effective_uid()
        );
    }
}

/// The effective uid from /proc/self/status (its `Uid:` line: real, effective, saved, fs).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
