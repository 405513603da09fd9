//! Progress of long admin work: a bar on a terminal, plain lines otherwise (logs, pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    done: u64,
}

impl Progress {
    /// `total` items of `what` ("backups exported").
    pub fn new(total: u64, what: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            total,
            done: 0,
        }
    }

    /// One more item done; `note` names it on the plain-line output.
    pub fn step(&mut self, note: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => eprintln!("{}/{} {}: {note}", self.done, self.total, self.what),
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
