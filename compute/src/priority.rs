//! The search's CPU priority. By default the scan threads (and the timing loop, so the figure
//! manage sizes ranges by is what the search really gets) run under SCHED_IDLE: they take only
//! what no other program wants, as mprime and BOINC do, so a host's owner does not feel them.
//! The main and control threads keep their normal priority: heartbeats and shutdowns are
//! answered at once even on a busy host.

use std::fmt;
use std::io;

/// The priority the search threads run at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Priority {
    /// SCHED_IDLE: only the CPU time nothing else wants.
    #[default]
    Idle,
    /// The priority compute was started with (SCHED_OTHER unless started otherwise).
    Normal,
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Priority::Idle => "idle (SCHED_IDLE)",
            Priority::Normal => "normal",
        })
    }
}

impl Priority {
    /// Gives the calling thread this priority. Threads it starts afterwards inherit it (Linux
    /// copies the scheduling policy to new threads), which is how the kernel's scan threads get
    /// it without the kernel crate knowing.
    pub fn apply_to_current_thread(self) -> io::Result<()> {
        match self {
            Priority::Normal => Ok(()),
            Priority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is the
                // calling thread. The call changes only the scheduling of this thread.
                let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
                if status == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_of_current_thread() -> libc::c_int {
        // SAFETY: sched_getscheduler only reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn idle_is_inherited_by_threads_started_after_it_and_normal_changes_nothing() {
        let (own, inherited) = std::thread::spawn(|| {
            Priority::Normal.apply_to_current_thread().unwrap();
            assert_eq!(policy_of_current_thread(), libc::SCHED_OTHER);
            Priority::Idle.apply_to_current_thread().unwrap();
            let inherited = std::thread::spawn(policy_of_current_thread).join().unwrap();
            (policy_of_current_thread(), inherited)
        })
        .join()
        .unwrap();
        assert_eq!(own, libc::SCHED_IDLE);
        assert_eq!(inherited, libc::SCHED_IDLE);
        // Only the thread that asked, and its own new threads: this one is untouched.
        assert_eq!(policy_of_current_thread(), libc::SCHED_OTHER);
    }
}
