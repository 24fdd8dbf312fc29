//! The evaluator's calibration (issue 27): on a fixed suite of world clips (128x128, 3 s,
//! 12 fps) ground truth scores high, raw and through H.264, and each corruption scores
//! low on what it breaks. The same table is `tessera eval --corrupt all` (BENCHMARKS.md).

use tessera_media::{read_video, write_video, Frame, WriteOptions};
use tessera_world::eval::corrupt::{corrupt, Corruption};
use tessera_world::eval::{evaluate, Scores, VideoRef};
use tessera_world::scene::SceneOptions;
use tessera_world::Spec;

const SEED: u64 = 27;
const CLIPS: u64 = 12;
const FPS: f64 = 12.0;

fn score(frames: &[Frame], spec: &Spec) -> Scores {
    evaluate(&VideoRef::of(frames, FPS), &spec.describe(), Some(spec)).scores
}

fn suite() -> Vec<(Spec, Vec<Frame>)> {
    let opts = SceneOptions { seconds: 3.0, ..Default::default() };
    (0..CLIPS)
        .map(|i| {
            let clip = tessera_world::sample_clip(SEED, i, &opts);
            let mut r = clip.scene.renderer(128, 128, FPS);
            let frames = (0..r.frame_count()).map(|k| r.frame(k)).collect();
            (clip.scene.spec.clone(), frames)
        })
        .collect()
}

#[test]
fn corruptions_score_low_on_what_they_break() {
    let suite = suite();
    let truth = Scores::mean(&suite.iter().map(|(s, f)| score(f, s)).collect::<Vec<_>>());
    let tmp = std::env::temp_dir().join(format!("tessera-calibration-{}.mp4", std::process::id()));
    let h264 = Scores::mean(
        &suite
            .iter()
            .map(|(s, f)| {
                write_video(&tmp, f, FPS, &WriteOptions::default()).unwrap();
                score(&read_video(&tmp).unwrap().0, s)
            })
            .collect::<Vec<_>>(),
    );
    let _ = std::fs::remove_file(&tmp);
    let of = |kind: Corruption| {
        Scores::mean(
            &suite
                .iter()
                .enumerate()
                .map(|(i, (s, f))| score(&corrupt(kind, f, Some(s), FPS, i as u64).unwrap(), s))
                .collect::<Vec<_>>(),
        )
    };
    let [flood, blank, frozen, shuffle, reverse, hue, fragments] = Corruption::ALL.map(of);
    eprintln!(
        "truth     {truth:?}\nh264      {h264:?}\nflood     {flood:?}\nblank     {blank:?}\nstatic    {frozen:?}"
    );
    eprintln!("shuffle   {shuffle:?}\nreverse   {reverse:?}\nhue       {hue:?}\nfragments {fragments:?}");
    assert!(truth.overall >= 0.95, "ground truth {truth:?}");
    assert!(h264.overall >= 0.95, "ground truth through H.264 {h264:?}");
    assert!(flood.overall <= 0.30 && flood.adherence <= 0.35, "flood {flood:?}");
    assert!(blank.overall <= 0.35, "blank {blank:?}");
    assert!(frozen.overall <= truth.overall - 0.3 && frozen.motion <= 0.4, "static {frozen:?}");
    assert!(shuffle.overall <= truth.overall - 0.3, "shuffle {shuffle:?}");
    assert!(reverse.physics <= truth.physics - 0.2, "reverse {reverse:?}");
    assert!(hue.adherence <= 0.5, "hue {hue:?}");
    assert!(fragments.adherence <= 0.5, "fragments {fragments:?}");
}
