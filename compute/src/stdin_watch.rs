//! `--end-with-stdin`: end when standard input reaches its end. manage --local gives each of
//! its computes a pipe as standard input and never writes to it; the kernel closes manage's end
//! when manage ends, however it ends (SIGKILL included), so the computes end with it instead of
//! reconnecting forever. A pipe rather than PR_SET_PDEATHSIG: that needs unsafe code between
//! fork and exec in manage, which forbids it, and it fires when the *thread* that forked ends,
//! not the process; a pipe's end of file is tied to the process and needs no race check.

use std::io::{self, Read};
use std::thread;

/// Starts a thread that reads standard input to its end, then ends this process (exit 1: the
/// work in hand cannot be delivered to a manage that is gone).
pub fn end_with_stdin() -> io::Result<()> {
    thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(|| {
            let mut sink = [0u8; 256];
            let mut stdin = io::stdin().lock();
            loop {
                match stdin.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        log::warn!("reading standard input: {error}");
                        break;
                    }
                }
            }
            log::warn!(
                "standard input closed: the manage that started this compute is gone; exiting"
            );
            std::process::exit(1);
        })
        .map(drop)
}
