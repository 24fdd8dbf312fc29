//! The benchmark's held-out split (issue 27): the held-out sampler always holds something
//! out, and training's sampler (with `hold_out`) never draws a held-out pair.

use tessera_world::holdout::{held_out, HeldOut, MAX_TRAINING_SPEED};
use tessera_world::scene::SceneOptions;

#[test]
fn held_out_clips_hold_out_and_training_clips_do_not() {
    let opts = SceneOptions { seconds: 2.0, ..Default::default() };
    let mut kinds = Vec::new();
    for i in 0..30 {
        let clip = tessera_world::sample_held_out_clip(5, i, &opts);
        let h = held_out(&clip.scene.spec);
        assert!(!h.is_empty(), "clip {i}: {:?}", clip.scene.spec);
        kinds.extend(h);
    }
    for k in HeldOut::ALL {
        assert!(kinds.contains(&k), "{k:?} never held out");
    }
    let training = SceneOptions { seconds: 2.0, hold_out: true, ..Default::default() };
    let mut pairs = 0;
    for i in 0..300 {
        assert!(held_out(&tessera_world::sample_clip(1, i, &training).scene.spec).is_empty(), "training clip {i}");
        // Without the option the suite is as before, pairs and all; speeds never exceed
        // training's.
        let spec = tessera_world::sample_clip(1, i, &opts).scene.spec;
        assert!(spec.objects.iter().all(|o| o.vx.abs() <= MAX_TRAINING_SPEED), "clip {i} {spec:?}");
        pairs += !held_out(&spec).is_empty() as usize;
    }
    assert!(pairs > 0, "the plain sampler draws held-out pairs too");
}
