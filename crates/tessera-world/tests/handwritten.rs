//! Prompts as people write them (issue 28): hand-written prompts about the world's scenes,
//! not drawn from the grammar, are understood word by word and every one yields a clip.
//!
//! fixtures/handwritten_prompts.txt (100 prompts) is the set the vocabulary was extended
//! on; fixtures/handwritten_prompts_heldout.txt (40) was written before the extension and
//! never tuned on: it measures how the reading generalises.

use std::path::Path;

use tessera_world::language::{parse, understand, vocabulary, ParseError, Understanding};
use tessera_world::scene::SceneOptions;
use tessera_world::spec::*;
use tessera_world::{expand, expand_lenient, sample_clip};

fn prompts(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

/// The share of all words understood over a set, printing each prompt's ignored words.
fn share(name: &str) -> f64 {
    let (mut known, mut total) = (0, 0);
    for p in prompts(name) {
        let u = understand(&p);
        known += u.understood.len();
        total += u.understood.len() + u.ignored.len();
        if !u.ignored.is_empty() {
            println!("{name}: {p:?} ignores {}", u.ignored_words().join(", "));
        }
    }
    let share = known as f64 / total as f64;
    println!("{name}: {known} of {total} words understood ({:.1}%)", 100.0 * share);
    share
}

#[test]
fn handwritten_prompts_are_understood() {
    assert_eq!(prompts("handwritten_prompts.txt").len(), 100);
    let s = share("handwritten_prompts.txt");
    assert!(s >= 0.95, "{:.1}% of the words understood, below 95%", 100.0 * s);
}

#[test]
fn held_out_handwritten_prompts_are_mostly_understood() {
    assert_eq!(prompts("handwritten_prompts_heldout.txt").len(), 40);
    // Reported, not tuned on: the floor only guards against a regression.
    let s = share("handwritten_prompts_heldout.txt");
    assert!(s >= 0.85, "{:.1}% of the held-out words understood", 100.0 * s);
}

#[test]
fn every_handwritten_prompt_yields_a_clip() {
    let opts = SceneOptions { seconds: 2.0, cut_probability: 0.0, hold_out: false };
    for p in prompts("handwritten_prompts.txt").iter().chain(&prompts("handwritten_prompts_heldout.txt")) {
        let (clip, u) = expand_lenient(p, 7, &opts);
        assert!(!clip.scene.spec.objects.is_empty(), "{p:?}");
        assert!(clip.caption.len() > 40, "{p:?}: {}", clip.caption);
        // Every object the prompt names is in the scene, as it was understood.
        assert_eq!(clip.scene.spec.objects.len(), u.description.objects.len().max(1), "{p:?}");
        for (o, want) in clip.scene.spec.objects.iter().zip(&u.description.objects) {
            assert!(want.shape.is_none_or(|s| s == o.shape), "{p:?}");
            assert!(want.color.is_none_or(|c| c == o.color), "{p:?}");
        }
        // The caption is in the captions' own words: the strict parser reads all of it.
        parse(&clip.caption).unwrap_or_else(|e| panic!("{p:?}: caption {:?}: {e}", clip.caption));
    }
}

#[test]
fn a_prompt_with_no_object_or_no_known_word_still_yields_a_clip() {
    let opts = SceneOptions { seconds: 1.0, ..Default::default() };
    for p in ["a sunny day on the grass", "hello there giraffe", "", "!!!"] {
        let (clip, u) = expand_lenient(p, 3, &opts);
        assert!(u.description.objects.is_empty(), "{p:?}");
        assert_eq!(clip.scene.spec.objects.len(), 1, "{p:?}: one object drawn from the seed");
    }
    let (clip, u) = expand_lenient("a sunny day on the grass", 3, &opts);
    assert_eq!((clip.scene.spec.background, clip.scene.spec.floor), (Background::Day, Floor::Grass));
    assert_eq!(u.share_understood(), 1.0);
    let u = understand("hello there giraffe");
    assert_eq!(u.ignored, vec!["hello", "giraffe"]);
    assert_eq!(understand("").share_understood(), 1.0);
}

fn object(
    shape: Shape,
    color: Option<Color>,
    size: Option<Size>,
    action: Option<Action>,
    direction: Option<Direction>,
) -> ObjectDescription {
    ObjectDescription { shape: Some(shape), color, size, action, direction }
}

/// Hand-checked readings: synonyms mean their canonical word, not filler.
#[test]
fn synonyms_map_to_the_worlds_meaning() {
    use Action::*;
    use Direction::*;
    let read = |p: &str| -> Understanding { understand(p) };

    let u = read("a shiny red sphere rolls slowly toward the left");
    assert_eq!(u.description.objects, vec![object(Shape::Ball, Some(Color::Red), None, Some(Roll), Some(Left))]);
    assert_eq!(u.ignored, vec!["shiny"]);

    let u = read("two cubes slide across the wooden floor and crash into each other");
    assert_eq!(u.description.objects, vec![object(Shape::Box, None, None, Some(Slide), None); 2]);
    assert!(u.description.collide);
    assert_eq!(u.description.floor, Some(Floor::Wood));
    assert!(u.ignored.is_empty(), "{:?}", u.ignored);

    let u = read("a medium green ball bounces in front of an indoor wall");
    assert_eq!(
        u.description.objects,
        vec![object(Shape::Ball, Some(Color::Green), Some(Size::Medium), Some(Drop), None)]
    );
    assert_eq!(
        (u.description.background, u.description.occluder),
        (Some(Background::Indoor), Some(OccluderKind::Wall))
    );
    assert!(u.ignored.is_empty(), "{:?}", u.ignored);

    // An orb is a ball; "skids" is sliding, "hurled" throwing, "is pushed" moving along
    // the floor as the shape does.
    let d = read("A blue orb skids left").description;
    assert_eq!(d.objects, vec![object(Shape::Ball, Some(Color::Blue), None, Some(Slide), Some(Left))]);
    let d = read("a crimson block is hurled to the right").description;
    assert_eq!(d.objects, vec![object(Shape::Box, Some(Color::Red), None, Some(Throw), Some(Right))]);
    let d = read("A blue box is pushed to the right across the stone floor.").description;
    assert_eq!(d.objects, vec![object(Shape::Box, Some(Color::Blue), None, Some(Slide), Some(Right))]);
    assert_eq!(d.floor, Some(Floor::Stone));
    let d = read("a red ball moves to the right").description;
    assert_eq!(d.objects, vec![object(Shape::Ball, Some(Color::Red), None, Some(Roll), Some(Right))]);

    // A verb before its object, a camera that follows, "from right to left".
    let d = read("Someone throws a green ball to the right at sunset.").description;
    assert_eq!(d.objects, vec![object(Shape::Ball, Some(Color::Green), None, Some(Throw), Some(Right))]);
    assert_eq!(d.background, Some(Background::Sunset));
    let d = read("a blue orb rolls quickly to the right, the camera follows it").description;
    assert_eq!(d.camera, Some(CameraMotion::PanRight));
    let d = read("A green ball travels across the screen from right to left.").description;
    assert_eq!(d.objects, vec![object(Shape::Ball, Some(Color::Green), None, Some(Roll), Some(Left))]);

    // Adjectives after their noun, and "toward each other".
    let d = read("Two balls, one red and one blue, roll toward each other and collide.").description;
    assert_eq!(
        d.objects,
        vec![
            object(Shape::Ball, Some(Color::Red), None, Some(Roll), Some(Right)),
            object(Shape::Ball, Some(Color::Blue), None, Some(Roll), Some(Left)),
        ]
    );
    assert!(d.collide);

    // "checkered tiles" is a checkered floor; "a field" is grass; the camera's "still".
    let d = read("an orange ball bouncing up and down on the checkered tiles").description;
    assert_eq!(d.floor, Some(Floor::Checker));
    let d = read("I want a ball and a box colliding on a grass field.").description;
    assert_eq!((d.objects.len(), d.collide, d.floor), (2, true, Some(Floor::Grass)));
    let d = read("a big white ball rolling to the right on a wooden floor at night, camera still").description;
    assert_eq!(
        (d.camera, d.background, d.objects[0].size),
        (Some(CameraMotion::Static), Some(Background::Night), Some(Size::Large))
    );
}

#[test]
fn the_strict_parse_still_refuses_unknown_words() {
    assert_eq!(
        parse("a shiny red sphere rolls slowly toward the left"),
        Err(ParseError::UnknownWords(vec!["shiny".into()]))
    );
    assert_eq!(
        parse("a red ball dances with a giraffe"),
        Err(ParseError::UnknownWords(vec!["dances".into(), "giraffe".into()]))
    );
    assert_eq!(parse("a sunny day on the grass"), Err(ParseError::NoObject));
    // Synonyms are the parser's words, strict or not.
    assert!(parse("a blue orb skids left").is_ok());
}

/// The lenient reading agrees with the strict one wherever that succeeds, so nothing
/// scored today (the evaluator reads hand-written suites with it) changes.
#[test]
fn understand_agrees_with_parse_on_generated_text() {
    let opts = SceneOptions { seconds: 2.5, cut_probability: 0.3, hold_out: false };
    for i in 0..300 {
        let clip = sample_clip(11, i, &opts);
        for text in [&clip.prompt, &clip.caption] {
            let u = understand(text);
            assert!(u.ignored.is_empty(), "{text:?}: {:?}", u.ignored);
            assert_eq!(Ok(u.description), parse(text), "{text:?}");
        }
    }
    let opts = SceneOptions::default();
    for p in ["red ball bouncing", "two small blue boxes slide to the left at night"] {
        let strict = expand(p, 5, &opts).unwrap();
        let (lenient, _) = expand_lenient(p, 5, &opts);
        assert_eq!((strict.caption, strict.scene.spec), (lenient.caption, lenient.scene.spec));
    }
}

/// The shipped model's tokenizer numbers the words of `vocabulary()` in order: new words
/// of the parser stay out of it (the model reads expanded captions, in canonical words).
#[test]
fn the_tokenizer_vocabulary_is_unchanged() {
    let want =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vocabulary.txt")).unwrap();
    assert_eq!(vocabulary(), want.lines().collect::<Vec<_>>());
}
