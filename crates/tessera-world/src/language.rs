//! The world's language: detailed captions and short prompts generated from a spec with
//! varied phrasing, and a parser that turns English within the world's vocabulary back
//! into a [`Description`].
//!
//! The generator and the parser are designed together: every phrasing the generator uses
//! is in the parser's vocabulary, and the tests check that what the parser reads back from
//! any generated text agrees with the spec. The parser is a small deterministic reader,
//! not a grammar: noun phrases ("two small red balls") create objects, verbs ("rolls",
//! "is thrown") give an action to the objects named since the last verb, and directions
//! attach to the last verb (an object's motion or the camera's pan). [`parse`] reports
//! every word it does not know, never skipping one; [`understand`], the lenient reading
//! for prompts as people write them, skips them and says which (issue 28).

use crate::rng::Rng;
use crate::spec::*;

mod captions;
mod lexicon;
mod parser;
mod vocabulary;

pub use captions::{caption, prompt, prompt_with_description};
#[cfg(test)]
use parser::*;
pub use parser::{parse, understand, Understanding};
pub use vocabulary::vocabulary;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Words outside the vocabulary, all of them listed (in order, deduplicated).
    #[error("words outside the world's vocabulary: {}", .0.join(", "))]
    UnknownWords(Vec<String>),
    /// The text names no object.
    #[error("the prompt names no object (a ball, box or triangle)")]
    NoObject,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::{random_description, realize, Scene, SceneOptions};

    fn specs(n: u64) -> Vec<Spec> {
        (0..n)
            .map(|i| {
                let mut rng = Rng::derive(77, i);
                let desc = random_description(&mut rng);
                Scene::new(realize(
                    &desc,
                    &mut rng,
                    &SceneOptions { seconds: 2.5, cut_probability: 0.3, hold_out: false },
                ))
                .spec
            })
            .collect()
    }

    /// Everything `d` states agrees with the spec; with `complete`, it states the objects'
    /// looks and the whole scene.
    fn agrees(d: &Description, spec: &Spec, complete: bool, text: &str) {
        let full = spec.describe();
        assert_eq!(d.objects.len(), full.objects.len(), "object count in {text:?}: {d:?}");
        for (got, want) in d.objects.iter().zip(&full.objects) {
            for (g, w, what) in [
                (got.shape.map(|x| x.word()), want.shape.map(|x| x.word()), "shape"),
                (got.color.map(|x| x.word()), want.color.map(|x| x.word()), "colour"),
                (got.size.map(|x| x.word()), want.size.map(|x| x.word()), "size"),
                (got.action.map(|x| x.word()), want.action.map(|x| x.word()), "action"),
                (got.direction.map(|x| x.word()), want.direction.map(|x| x.word()), "direction"),
            ] {
                if g.is_some() || (complete && what != "direction" && what != "action") {
                    assert_eq!(g, w, "{what} in {text:?}");
                }
            }
        }
        macro_rules! same {
            ($f:ident) => {
                if d.$f.is_some() || complete {
                    assert_eq!(d.$f, full.$f, "{} in {text:?}", stringify!($f));
                }
            };
        }
        same!(background);
        same!(floor);
        same!(lighting);
        same!(camera);
        if d.occluder.is_some() {
            assert_eq!(d.occluder, full.occluder, "occluder in {text:?}");
        }
        if d.ramp {
            assert!(full.ramp, "ramp in {text:?}");
        }
        if d.collide {
            assert!(full.collide, "collide in {text:?}");
        }
        if let Some(n) = d.shots {
            assert_eq!(Some(n), full.shots, "shots in {text:?}");
        }
        if let Some(s) = d.seconds {
            assert!((s - spec.seconds).abs() < 0.006, "seconds in {text:?}");
        }
    }

    #[test]
    fn generated_prompts_and_captions_parse_back_to_their_spec() {
        for spec in specs(300) {
            for seed in 0..6 {
                let mut rng = Rng::new(seed);
                let (p, d) = prompt_with_description(&spec, &mut rng);
                agrees(&d, &spec, false, &p);
                let c = caption(&spec, &mut rng);
                let d = parse(&c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                agrees(&d, &spec, true, &c);
                // Every object's action is in the caption.
                for (o, want) in d.objects.iter().zip(&spec.objects) {
                    assert_eq!(o.action, Some(want.action), "action in {c:?}");
                }
            }
        }
    }

    #[test]
    fn parses_hand_written_prompts() {
        let d = parse("a red ball bounces on a wooden floor").unwrap();
        assert_eq!(
            d.objects,
            vec![ObjectDescription {
                shape: Some(Shape::Ball),
                color: Some(Color::Red),
                action: Some(Action::Drop),
                ..Default::default()
            }]
        );
        assert_eq!(d.floor, Some(Floor::Wood));

        let d = parse("two small blue boxes slide to the left at night").unwrap();
        assert_eq!(d.objects.len(), 2);
        for o in &d.objects {
            assert_eq!(
                (o.shape, o.color, o.size, o.action, o.direction),
                (Some(Shape::Box), Some(Color::Blue), Some(Size::Small), Some(Action::Slide), Some(Direction::Left))
            );
        }
        assert_eq!(d.background, Some(Background::Night));

        let d = parse("a green triangle is thrown to the right, the camera pans left").unwrap();
        assert_eq!((d.objects[0].action, d.objects[0].direction), (Some(Action::Throw), Some(Direction::Right)));
        assert_eq!(d.camera, Some(CameraMotion::PanLeft));

        let d = parse("a purple ball rolls behind a pillar and reappears").unwrap();
        assert_eq!(d.objects[0].action, Some(Action::Roll));
        assert_eq!(d.occluder, Some(OccluderKind::Pillar));

        let d = parse("red ball bouncing").unwrap();
        assert_eq!((d.objects[0].color, d.objects[0].action), (Some(Color::Red), Some(Action::Drop)));

        let d = parse("A yellow cube rolls in from the right under a blue sky; the camera zooms out. 2.5 seconds, one continuous shot.").unwrap();
        assert_eq!(
            (d.objects[0].shape, d.objects[0].color, d.objects[0].direction),
            (Some(Shape::Box), Some(Color::Yellow), Some(Direction::Left))
        );
        assert_eq!(d.objects.len(), 1, "'blue sky' is a background, not an object");
        assert_eq!(
            (d.background, d.camera, d.seconds, d.shots),
            (Some(Background::Day), Some(CameraMotion::ZoomOut), Some(2.5), Some(1))
        );

        let d = parse("a white ball and a black box move toward each other and collide").unwrap();
        assert!(d.collide);
        assert_eq!(
            d.objects.iter().map(|o| o.action).collect::<Vec<_>>(),
            vec![Some(Action::Roll), Some(Action::Slide)]
        );
    }

    #[test]
    fn reports_every_unknown_word_and_missing_objects() {
        assert_eq!(
            parse("a red ball dances with a giraffe"),
            Err(ParseError::UnknownWords(vec!["dances".into(), "giraffe".into()]))
        );
        assert_eq!(parse("a sunny day on the grass"), Err(ParseError::NoObject));
        let e = parse("a red ball dances, dances and a giraffe").unwrap_err();
        assert_eq!(e.to_string(), "words outside the world's vocabulary: dances, giraffe");
    }

    #[test]
    fn phrasing_varies() {
        let spec = &specs(1)[0];
        let prompts: std::collections::HashSet<String> = (0..20).map(|s| prompt(spec, &mut Rng::new(s))).collect();
        let captions: std::collections::HashSet<String> = (0..20).map(|s| caption(spec, &mut Rng::new(s))).collect();
        assert!(prompts.len() >= 5, "{prompts:?}");
        assert!(captions.len() >= 5, "{captions:?}");
    }

    #[test]
    fn the_lexicon_extends_the_vocabulary_without_changing_it() {
        let vocab = vocabulary();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in lexicon::aliases() {
            assert!(!vocab.contains(k), "alias {k:?} is a word of the vocabulary already");
            assert!(vocab.contains(v), "alias {k:?} means {v:?}, which is not a word of the vocabulary");
            assert!(seen.insert(*k), "alias {k:?} twice");
        }
        for w in lexicon::function_words().iter().chain(lexicon::numbers().iter().map(|(w, _)| w)) {
            assert!(!vocab.contains(w), "{w:?} is a word of the vocabulary already");
            assert!(seen.insert(*w), "{w:?} is listed twice in the lexicon");
        }
        for w in MOVE.iter().chain(FOLLOW).chain(APART) {
            assert!(!lexicon::function_words().contains(w), "{w:?} has a meaning: not a function word");
        }
    }

    fn only(text: &str) -> ObjectDescription {
        let u = understand(text);
        assert!(u.ignored.is_empty(), "{text:?} ignores {:?}", u.ignored);
        assert_eq!(u.description.objects.len(), 1, "{text:?}");
        u.description.objects[0].clone()
    }

    #[test]
    fn motion_verbs_leave_the_kind_to_the_shape() {
        assert_eq!(only("a box moves to the left").action, Some(Action::Slide));
        assert_eq!(only("the ball is kicked across the lawn").action, Some(Action::Roll));
        assert_eq!(only("a triangle is shoved to the left").action, Some(Action::Slide));
        // Said of the camera, a pan.
        let d = understand("the camera moves to the right over a red ball").description;
        assert_eq!((d.camera, d.objects[0].action), (Some(CameraMotion::PanRight), None));
    }

    #[test]
    fn a_verb_before_its_object_acts_on_it() {
        let o = only("someone throws a ball to the left");
        assert_eq!((o.action, o.direction), (Some(Action::Throw), Some(Direction::Left)));
        let d = understand("rolling across the grass, two blue balls").description;
        assert!(d.objects.iter().all(|o| o.action == Some(Action::Roll)) && d.objects.len() == 2);
        // Not past the sentence's end.
        assert_eq!(understand("it falls. a box").description.objects[0].action, None);
    }

    #[test]
    fn adjectives_after_their_noun() {
        let d = understand("two balls, one red and one blue").description;
        assert_eq!(d.objects.iter().map(|o| o.color).collect::<Vec<_>>(), vec![Some(Color::Red), Some(Color::Blue)]);
        let d = understand("two boxes, one big and one small, slide").description;
        assert_eq!(d.objects.iter().map(|o| o.size).collect::<Vec<_>>(), vec![Some(Size::Large), Some(Size::Small)]);
        assert_eq!(only("a ball rolls. It is green.").color, Some(Color::Green));
        // An adjective of something else is no object's.
        assert_eq!(only("a ball rolls on the big floor").size, None);
        assert_eq!(understand("a ball rolls under a pale blue moon").description.objects[0].color, None);
        let o = only("a big red bouncing ball");
        assert_eq!((o.size, o.color, o.action), (Some(Size::Large), Some(Color::Red), Some(Action::Drop)));
    }

    #[test]
    fn directions_of_pairs_and_a_following_camera() {
        let d = understand("a ball and a box roll toward one another").description;
        assert_eq!(
            d.objects.iter().map(|o| o.direction).collect::<Vec<_>>(),
            vec![Some(Direction::Right), Some(Direction::Left)]
        );
        let d = understand("two cubes slide apart").description;
        assert_eq!(
            d.objects.iter().map(|o| o.direction).collect::<Vec<_>>(),
            vec![Some(Direction::Left), Some(Direction::Right)]
        );
        let d = understand("the camera tracks a ball as it rolls to the left").description;
        assert_eq!(d.camera, Some(CameraMotion::PanLeft));
        // A stated camera motion stands.
        let d = understand("the camera zooms in, following a ball rolling left").description;
        assert_eq!(d.camera, Some(CameraMotion::ZoomIn));
    }

    #[test]
    fn floor_words_in_compounds_and_as_materials() {
        assert_eq!(understand("a ball on checkered tiles").description.floor, Some(Floor::Checker));
        assert_eq!(understand("a ball on stone tiles in a grassy park").description.floor, Some(Floor::Grass));
        let u = understand("two wooden boxes on the grass");
        assert_eq!((u.description.objects.len(), u.description.floor), (2, Some(Floor::Grass)));
        assert_eq!(u.ignored, vec!["wooden"], "the world draws no materials");
    }

    #[test]
    fn numbers_synonyms_and_function_words() {
        assert_eq!(understand("a pair of balls").description.objects.len(), 2);
        assert_eq!(understand("seven tiny cubes").description.objects.len(), 7);
        let o = only("Please show me a crimson orb hurled leftward");
        assert_eq!(
            (o.shape, o.color, o.action, o.direction),
            (Some(Shape::Ball), Some(Color::Red), Some(Action::Throw), Some(Direction::Left))
        );
        // Typographic apostrophes are apostrophes.
        assert_eq!(only("Let\u{2019}s see a red ball").color, Some(Color::Red));
        assert!((understand("a ball dances").share_understood() - 2.0 / 3.0).abs() < 1e-9);
    }
}
