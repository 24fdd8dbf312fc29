//! tessera's world: a deterministic 2D physics world that renders captioned videos of any
//! size and length, the language that describes it (captions, prompts, a parser, prompt
//! expansion), and an evaluator that scores any video against a prompt and the physics.
//!
//! Library only: no command-line parsing or progress bars (DESIGN.md).

pub mod eval;
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
    let desc = random_description(&mut rng);
    let scene = Scene::new(realize(&desc, &mut rng, opts));
    let prompt = language::prompt(&scene.spec, &mut rng);
    let caption = language::caption(&scene.spec, &mut rng);
    Clip { scene, prompt, caption }
}

/// Prompt expansion: parses a prompt in the world's vocabulary, fills in everything it
/// leaves unstated (from `seed`), and describes the result in a detailed caption, as
/// Sora expands short prompts with a language model before generating.
pub fn expand(text: &str, seed: u64, opts: &SceneOptions) -> Result<Clip, language::ParseError> {
    let desc = language::parse(text)?;
    let mut rng = Rng::new(seed);
    let scene = Scene::new(realize(&desc, &mut rng, opts));
    let caption = language::caption(&scene.spec, &mut rng);
    Ok(Clip { scene, prompt: text.to_string(), caption })
}
