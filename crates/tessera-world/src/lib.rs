//! tessera's world: a deterministic 2D physics world that renders captioned videos of any
//! size and length, the language that describes it (captions, prompts, a parser, prompt
//! expansion), and an evaluator that scores any video against a prompt and the physics.
//!
//! Library only: no command-line parsing or progress bars (docs/ARCHITECTURE.md, Conventions).

pub mod eval;
pub mod holdout;
pub mod language;
pub mod render;
pub mod rng;
pub mod scene;
pub mod sim;
pub mod spec;

pub use spec::*;
pub mod report;

use rng::Rng;
use scene::{random_description, realize, Scene, SceneOptions};

/// One clip of the world: the simulated scene, its short prompt and detailed caption.
pub struct Clip {
    pub scene: Scene,
    pub prompt: String,
    pub caption: String,
}

/// Clip `index` of the suite drawn from `seed`: the same arguments give the same clip
/// (and the same rendered bytes) everywhere.
pub fn sample_clip(seed: u64, index: u64, opts: &SceneOptions) -> Clip {
    let mut rng = Rng::derive(seed, index);
    let mut desc = random_description(&mut rng);
    // Training holds out some pairs (holdout.rs): redraw until none is combined.
    while opts.hold_out && holdout::description_held_out(&desc) {
        desc = random_description(&mut rng);
    }
    captioned(realize(&desc, &mut rng, opts), &mut rng)
}

/// A spec simulated, with a prompt and a caption drawn from `rng`.
fn captioned(spec: Spec, rng: &mut Rng) -> Clip {
    let scene = Scene::new(spec);
    let prompt = language::prompt(&scene.spec, rng);
    let caption = language::caption(&scene.spec, rng);
    Clip { scene, prompt, caption }
}

/// Clip `index` of the held-out suite drawn from `seed`: a clip of [`sample_clip`]'s kind
/// made held out in one way ([`holdout::HeldOut`], cycling with the index), for testing
/// on what training never shows.
pub fn sample_held_out_clip(seed: u64, index: u64, opts: &SceneOptions) -> Clip {
    let mut rng = Rng::derive(seed ^ 0x6865_6c64_6f75_7421, index);
    let mut desc = random_description(&mut rng);
    let kind = holdout::HeldOut::ALL[(index % 3) as usize];
    holdout::make_held_out(&mut desc, kind, &mut rng);
    let mut spec = realize(&desc, &mut rng, opts);
    if kind == holdout::HeldOut::Speed {
        holdout::speed_up(&mut spec);
    }
    captioned(spec, &mut rng)
}

/// Prompt expansion: parses a prompt in the world's vocabulary, fills in everything it
/// leaves unstated (from `seed`), and describes the result in a detailed caption, as
/// Sora expands short prompts with a language model before generating. Refuses a prompt
/// with a word outside the vocabulary or no object ([`expand_lenient`] does not).
pub fn expand(text: &str, seed: u64, opts: &SceneOptions) -> Result<Clip, language::ParseError> {
    let desc = language::parse(text)?;
    Ok(expand_description(&desc, text, seed, opts))
}

/// Prompt expansion for prompts as people write them: as [`expand`], but it reads the
/// prompt with [`language::understand`], so words outside the world's vocabulary are
/// skipped (the understanding returned lists them, for the caller to report), and every
/// prompt yields a clip. A prompt that names no object ("a sunny day on the grass",
/// "hello") gets one object whose shape, colour, size and action are drawn from `seed`,
/// as any unstated detail is, in the setting the prompt does state: a scene of the world
/// without an object is not a clip it was ever trained or scored on. Where [`expand`]
/// succeeds, the clip is the same.
pub fn expand_lenient(text: &str, seed: u64, opts: &SceneOptions) -> (Clip, language::Understanding) {
    let u = language::understand(text);
    (expand_description(&u.description, text, seed, opts), u)
}

fn expand_description(desc: &Description, text: &str, seed: u64, opts: &SceneOptions) -> Clip {
    let mut rng = Rng::new(seed);
    // `realize` gives a description with no object one drawn from the seed.
    let scene = Scene::new(realize(desc, &mut rng, opts));
    let caption = language::caption(&scene.spec, &mut rng);
    Clip { scene, prompt: text.to_string(), caption }
}
