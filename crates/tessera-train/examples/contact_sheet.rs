//! A contact sheet of videos: one row per video, every EVERY-th frame (and the last) left to
//! right, as the sheets a training run writes (tessera_train::samples). MODEL_CARD's sheet
//! of 16 prompts is made with it (tools/model_card_figures.sh).
//! `cargo run --release -p tessera-train --example contact_sheet -- OUT.png EVERY VIDEO...`
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, every, videos @ ..] = &args[..] else { anyhow::bail!("usage: OUT.png EVERY VIDEO...") };
    let every: usize = every.parse()?;
    anyhow::ensure!(every > 0 && !videos.is_empty(), "usage: OUT.png EVERY VIDEO... (EVERY >= 1)");
    let mut rows = Vec::new();
    for v in videos {
        let (frames, _) = tessera_media::read_video(Path::new(v)).map_err(|e| anyhow::anyhow!("{v}: {e}"))?;
        let mut picked: Vec<_> = frames.iter().step_by(every).cloned().collect();
        if (frames.len() - 1) % every != 0 {
            picked.push(frames[frames.len() - 1].clone());
        }
        rows.push(picked);
    }
    let sheet = tessera_train::samples::contact_sheet(&rows)?;
    tessera_media::write_video(Path::new(out), &[sheet], 1.0, &Default::default())?;
    Ok(())
}
