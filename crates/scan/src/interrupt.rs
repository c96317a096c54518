//! Ctrl-C and SIGTERM for a long run: the first signal asks every phase (discovery, the port
//! scan, identification) to stop and the run to close its outputs and write its resume file;
//! the exit code is then 128 + the signal (130 for SIGINT, 143 for SIGTERM). Only a third
//! signal ends the process at once, for a run that does not stop.
//!
//! The signals are read on a thread of their own through `signal-hook`'s self-pipe, so nothing
//! runs inside a signal handler but a write to that pipe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Signals after which the process exits without finishing its outputs.
const FORCE_AFTER: u32 = 3;

/// The stop request shared by the phases of a run.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    /// A stop request nothing will set but [`Interrupt::request`] (tests, library callers).
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Listens for SIGINT and SIGTERM from now on. `on_first` runs (on the signal thread) when
    /// the first one arrives, to say that the run is stopping.
    pub fn install(on_first: impl Fn(i32) + Send + 'static) -> std::io::Result<Interrupt> {
        let me = Interrupt::new();
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let (stop, first) = (Arc::clone(&me.stop), Arc::clone(&me.signal));
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            let mut count = 0;
            for sig in signals.forever() {
                count += 1;
                if count == 1 {
                    first.store(sig, Ordering::SeqCst);
                    stop.store(true, Ordering::SeqCst);
                    on_first(sig);
                } else if count >= FORCE_AFTER {
                    std::process::exit(128 + first.load(Ordering::SeqCst));
                }
            }
        })?;
        Ok(me)
    }

    /// Asks the run to stop, as a signal would (without one: exit code 130).
    pub fn request(&self) {
        let _ = self.signal.compare_exchange(0, SIGINT, Ordering::SeqCst, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The flag the engines poll.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The exit code of a run that stopped: 128 + the first signal (130, 143).
    pub fn exit_code(&self) -> u8 {
        let sig = self.signal.load(Ordering::SeqCst);
        u8::try_from(128 + if sig == 0 { SIGINT } else { sig }).unwrap_or(130)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_stops_with_the_sigint_code() {
        let i = Interrupt::new();
        assert!(!i.stopped());
        i.request();
        assert!(i.stopped() && i.flag().load(Ordering::SeqCst));
        assert_eq!(i.exit_code(), 130);
    }
}
