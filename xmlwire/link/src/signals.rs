//! Ctrl-C and its kin as a flag: the blocking binaries check it between steps and stop cleanly
//! (compute delivers what it scanned, report leaves its watch loop).

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

/// A flag that SIGINT, SIGQUIT, SIGHUP and SIGTERM set (instead of ending the process).
pub fn stop_flag() -> io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGQUIT, SIGHUP, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_signal_sets_the_flag_and_the_process_lives_on() {
        let stop = stop_flag().unwrap();
        assert!(!stop.load(Ordering::Relaxed));
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert!(stop.load(Ordering::Relaxed));
    }
}
