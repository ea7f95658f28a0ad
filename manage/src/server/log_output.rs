//! Log lines written once per reactor tick. Under load manage logs tens of thousands of lines a
//! second (a line per assignment and per result), and one write(2) per line was about a tenth
//! of its CPU in the load bench's profile. The logger appends to a buffer instead; the reactor
//! writes it out before every poll, so a line waits at most for the rest of its event batch. A
//! full buffer (64 KiB) is written out at once, and `main` writes what is left on exit and on
//! a panic.

use std::io::{self, Write};
use std::sync::Mutex;

/// Written out as soon as it holds this much.
const FLUSH_AT: usize = 64 << 10;

/// Lines not yet written.
struct Pending(Vec<u8>);

impl Pending {
    /// Appends `bytes`; writes everything to `sink` once the buffer is full.
    fn append(&mut self, bytes: &[u8], sink: &mut impl Write) {
        self.0.extend_from_slice(bytes);
        if self.0.len() >= FLUSH_AT {
            self.write_out(sink);
        }
    }

    fn write_out(&mut self, sink: &mut impl Write) {
        if self.0.is_empty() {
            return;
        }
        // Nowhere to report a failed write of the log itself.
        let _ = sink.write_all(&self.0);
        self.0.clear();
        // Keep a busy tick's allocation, but not a burst's.
        if self.0.capacity() > 4 * FLUSH_AT {
            self.0.shrink_to(FLUSH_AT);
        }
    }
}

static PENDING: Mutex<Pending> = Mutex::new(Pending(Vec::new()));

/// The logger's target: standard error, a tick at a time.
pub struct TickBufferedStderr;

impl Write for TickBufferedStderr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        lock().append(bytes, &mut io::stderr().lock());
        Ok(bytes.len())
    }

    /// env_logger flushes after every line; the real write waits for [`flush`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes every pending line to standard error.
pub fn flush() {
    lock().write_out(&mut io::stderr().lock());
}

fn lock() -> std::sync::MutexGuard<'static, Pending> {
    // A panic while holding the lock cannot leave the buffer inconsistent (it is only appended
    // to and cleared): carry on with it.
    PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_for_a_flush_or_a_full_buffer() {
        let mut pending = Pending(Vec::new());
        let mut sink = Vec::new();
        pending.append(b"a line\n", &mut sink);
        pending.append(b"another\n", &mut sink);
        assert!(sink.is_empty(), "lines wait");
        pending.write_out(&mut sink);
        assert_eq!(sink, b"a line\nanother\n");
        assert!(pending.0.is_empty());
        sink.clear();
        let big = vec![b'x'; FLUSH_AT];
        pending.append(b"first ", &mut sink);
        pending.append(&big, &mut sink);
        assert_eq!(sink.len(), FLUSH_AT + 6, "a full buffer is written at once");
        assert!(pending.0.is_empty());
    }
}
