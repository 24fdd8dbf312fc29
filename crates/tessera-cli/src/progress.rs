//! Progress on stderr: a bar with step i/N and ETA on a terminal, plain lines otherwise
//! (logs and CI), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tessera_pipeline::Progress;

pub struct Reporter {
    mode: Mode,
    start: Instant,
    stage_start: Instant,
    /// The count the current stage started from (a resumed training run starts at its
    /// checkpoint's step), so the ETA uses only the steps done since.
    stage_base: Option<usize>,
    bar: Option<ProgressBar>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Quiet,
    Plain,
    Bar,
}

impl Reporter {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Plain
        };
        let now = Instant::now();
        Self { mode, start: now, stage_start: now, stage_base: None, bar: None }
    }

    pub fn message(&mut self, msg: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("[{:>7.1}s] {msg}", self.start.elapsed().as_secs_f64()),
            Mode::Bar => match &self.bar {
                Some(bar) => bar.println(msg),
                None => eprintln!("{msg}"),
            },
        }
    }

    pub fn event(&mut self, ev: Progress) {
        match ev {
            Progress::Stage(name) => {
                self.finish_bar();
                self.stage_start = Instant::now();
                self.message(&format!("{name}..."));
            }
            Progress::Step { step, total } => self.count("denoise", "step", step, total),
            Progress::Decoded { done, total } => self.count("decode", "frame", done, total),
            Progress::Cached { computed, skipped, .. } => {
                self.finish_bar();
                let all = computed + skipped;
                self.message(&format!(
                    "step cache: {skipped} of {all} transformer passes skipped ({:.0}%)",
                    100.0 * skipped as f64 / all.max(1) as f64
                ));
            }
        }
    }

    pub fn count(&mut self, what: &str, unit: &str, done: usize, total: usize) {
        let base = *self.stage_base.get_or_insert(done.saturating_sub(1));
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let el = self.stage_start.elapsed().as_secs_f64();
                let eta = if done > base { el / (done - base) as f64 * (total - done.min(total)) as f64 } else { 0.0 };
                eprintln!(
                    "[{:>7.1}s] {what} {unit} {done}/{total} ({el:.1}s, eta {eta:.1}s)",
                    self.start.elapsed().as_secs_f64()
                );
            }
            Mode::Bar => {
                let bar = self.bar.get_or_insert_with(|| {
                    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr())
                        .with_position(base as u64);
                    bar.reset_eta();
                    let style = ProgressStyle::with_template(&format!(
                        "{what:>8} [{{bar:30}}] {unit} {{pos}}/{{len}} {{elapsed_precise}} eta {{eta}}"
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.enable_steady_tick(Duration::from_millis(250));
                    bar
                });
                bar.set_position(done as u64);
                if done >= total {
                    self.finish_bar();
                }
            }
        }
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        self.stage_base = None;
    }

    pub fn done(&mut self, msg: &str) {
        self.finish_bar();
        self.message(&format!("{msg} in {:.1}s", self.start.elapsed().as_secs_f64()));
    }
}
