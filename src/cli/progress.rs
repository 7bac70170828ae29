//! Progress on a terminal: the runtime reports [`ProgressEvent`]s, this draws
//! them with indicatif. Nothing is drawn when stderr is not a terminal, so
//! logs and CI output stay clean.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codegenie_runtime::{ProgressEvent, ProgressSink};
use indicatif::{ProgressBar, ProgressStyle};

/// Draws probe progress as a spinner (phases) or a bar (planned units).
#[derive(Default)]
pub(crate) struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalProgress {
    /// A sink when stderr is a terminal; `None` otherwise.
    pub(crate) fn for_stderr() -> Option<Arc<dyn ProgressSink>> {
        std::io::stderr()
            .is_terminal()
            .then(|| Arc::new(TerminalProgress::default()) as Arc<dyn ProgressSink>)
    }

    fn replace(&self, next: Option<ProgressBar>) {
        let mut bar = self.bar.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = bar.take() {
            old.finish_and_clear();
        }
        *bar = next;
    }
}

impl ProgressSink for TerminalProgress {
    fn event(&self, probe: &str, event: ProgressEvent<'_>) {
        match event {
            ProgressEvent::Phase(what) => {
                let spinner = ProgressBar::new_spinner();
                spinner.set_message(format!("{probe}: {what}"));
                spinner.enable_steady_tick(Duration::from_millis(120));
                self.replace(Some(spinner));
            }
            ProgressEvent::Planned { total } => {
                let bar = ProgressBar::new(total);
                if let Ok(style) =
                    ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
                {
                    bar.set_style(style);
                }
                bar.set_message(probe.to_owned());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.replace(Some(bar));
            }
            ProgressEvent::Started(unit) => {
                if let Some(bar) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
                    bar.set_message(format!("{probe}: {unit}"));
                }
            }
            ProgressEvent::Finished(_) => {
                if let Some(bar) = &*self.bar.lock().unwrap_or_else(|p| p.into_inner()) {
                    bar.inc(1);
                }
            }
            ProgressEvent::Done => self.replace(None),
            // Events added later are drawn as nothing rather than guessed at.
            _ => {}
        }
    }
}
