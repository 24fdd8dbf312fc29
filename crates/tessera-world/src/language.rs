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

mod lexicon;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Words outside the vocabulary, all of them listed (in order, deduplicated).
    #[error("words outside the world's vocabulary: {}", .0.join(", "))]
    UnknownWords(Vec<String>),
    /// The text names no object.
    #[error("the prompt names no object (a ball, box or triangle)")]
    NoObject,
}

// ---------------------------------------------------------------------------------------
// Vocabulary.

const SHAPES: &[(&str, Shape)] = &[
    ("ball", Shape::Ball),
    ("balls", Shape::Ball),
    ("sphere", Shape::Ball),
    ("spheres", Shape::Ball),
    ("box", Shape::Box),
    ("boxes", Shape::Box),
    ("cube", Shape::Box),
    ("cubes", Shape::Box),
    ("block", Shape::Box),
    ("blocks", Shape::Box),
    ("crate", Shape::Box),
    ("crates", Shape::Box),
    ("triangle", Shape::Triangle),
    ("triangles", Shape::Triangle),
    ("pyramid", Shape::Triangle),
    ("pyramids", Shape::Triangle),
];
const COLORS: &[(&str, Color)] = &[
    ("red", Color::Red),
    ("orange", Color::Orange),
    ("yellow", Color::Yellow),
    ("green", Color::Green),
    ("blue", Color::Blue),
    ("purple", Color::Purple),
    ("violet", Color::Purple),
    ("white", Color::White),
    ("black", Color::Black),
];
const SIZES: &[(&str, Size)] = &[
    ("small", Size::Small),
    ("little", Size::Small),
    ("tiny", Size::Small),
    ("medium", Size::Medium),
    ("large", Size::Large),
    ("big", Size::Large),
    ("huge", Size::Large),
];
const NUMBERS: &[(&str, usize)] =
    &[("a", 1), ("an", 1), ("one", 1), ("two", 2), ("three", 3), ("four", 4), ("five", 5), ("six", 6)];
const ACTIONS: &[(&str, Action)] = &[
    ("falls", Action::Drop),
    ("fall", Action::Drop),
    ("falling", Action::Drop),
    ("fell", Action::Drop),
    ("drops", Action::Drop),
    ("drop", Action::Drop),
    ("dropped", Action::Drop),
    ("dropping", Action::Drop),
    ("bounces", Action::Drop),
    ("bounce", Action::Drop),
    ("bouncing", Action::Drop),
    ("bounced", Action::Drop),
    ("rolls", Action::Roll),
    ("roll", Action::Roll),
    ("rolling", Action::Roll),
    ("rolled", Action::Roll),
    ("slides", Action::Slide),
    ("slide", Action::Slide),
    ("sliding", Action::Slide),
    ("slid", Action::Slide),
    ("glides", Action::Slide),
    ("gliding", Action::Slide),
    ("thrown", Action::Throw),
    ("throws", Action::Throw),
    ("throw", Action::Throw),
    ("threw", Action::Throw),
    ("throwing", Action::Throw),
    ("tossed", Action::Throw),
    ("tosses", Action::Throw),
    ("toss", Action::Throw),
    ("launched", Action::Throw),
    ("flies", Action::Throw),
    ("flying", Action::Throw),
    ("sits", Action::Rest),
    ("sit", Action::Rest),
    ("sitting", Action::Rest),
    ("rests", Action::Rest),
    ("resting", Action::Rest),
    ("lies", Action::Rest),
    ("lying", Action::Rest),
    ("motionless", Action::Rest),
];
const BACKGROUNDS: &[(&str, Background)] = &[
    ("sky", Background::Day),
    ("daylight", Background::Day),
    ("day", Background::Day),
    ("daytime", Background::Day),
    ("sunny", Background::Day),
    ("noon", Background::Day),
    ("sunset", Background::Sunset),
    ("dusk", Background::Sunset),
    ("evening", Background::Sunset),
    ("twilight", Background::Sunset),
    ("night", Background::Night),
    ("nighttime", Background::Night),
    ("stars", Background::Night),
    ("starry", Background::Night),
    ("starlit", Background::Night),
    ("moonlit", Background::Night),
    ("indoors", Background::Indoor),
    ("indoor", Background::Indoor),
    ("inside", Background::Indoor),
    ("room", Background::Indoor),
    ("wallpaper", Background::Indoor),
    ("interior", Background::Indoor),
];
const FLOORS: &[(&str, Floor)] = &[
    ("grass", Floor::Grass),
    ("grassy", Floor::Grass),
    ("lawn", Floor::Grass),
    ("meadow", Floor::Grass),
    ("wood", Floor::Wood),
    ("wooden", Floor::Wood),
    ("planks", Floor::Wood),
    ("parquet", Floor::Wood),
    ("floorboards", Floor::Wood),
    ("stone", Floor::Stone),
    ("tiles", Floor::Stone),
    ("tiled", Floor::Stone),
    ("paved", Floor::Stone),
    ("cobblestones", Floor::Stone),
    ("flagstones", Floor::Stone),
    ("checker", Floor::Checker),
    ("checkered", Floor::Checker),
    ("chequered", Floor::Checker),
    ("checkerboard", Floor::Checker),
    ("checked", Floor::Checker),
];
const LIGHTING: &[(&str, Lighting)] = &[
    ("bright", Lighting::Bright),
    ("brightly", Lighting::Bright),
    ("sunlit", Lighting::Bright),
    ("soft", Lighting::Normal),
    ("softly", Lighting::Normal),
    ("even", Lighting::Normal),
    ("evenly", Lighting::Normal),
    ("moderate", Lighting::Normal),
    ("dim", Lighting::Dim),
    ("dimly", Lighting::Dim),
    ("dark", Lighting::Dim),
    ("gloomy", Lighting::Dim),
];
const OCCLUDERS: &[(&str, OccluderKind)] = &[
    ("pillar", OccluderKind::Pillar),
    ("column", OccluderKind::Pillar),
    ("post", OccluderKind::Pillar),
    ("wall", OccluderKind::Wall),
    ("tree", OccluderKind::Tree),
];
const LEFT: &[&str] = &["left", "leftward", "leftwards"];
const RIGHT: &[&str] = &["right", "rightward", "rightwards"];
const PAN: &[&str] = &["pans", "pan", "panning", "panned", "sweeps", "sweeping"];
const ZOOM: &[&str] = &["zooms", "zoom", "zooming", "zoomed", "pushes", "pushing"];
const STATIC: &[&str] = &["static", "fixed", "steady", "locked", "stationary", "unmoving"];
const COLLIDE: &[&str] = &[
    "collide",
    "collides",
    "colliding",
    "collision",
    "crash",
    "crashes",
    "crashing",
    "bump",
    "bumps",
    "meet",
    "meets",
    "hit",
    "hits",
];
const CUT: &[&str] = &["cut", "cuts", "cutting"];
const SHOT_NOUNS: &[&str] = &["shot", "shots"];
const SECONDS: &[&str] = &["second", "seconds", "sec", "secs"];
const OBJECT_NOUNS: &[&str] = &["object", "objects", "shape", "shapes", "thing", "things", "one", "ones"];

/// Words that carry nothing the description records: articles, prepositions, auxiliaries,
/// and the world's filler (what happens to objects that the physics decides anyway).
const STOP: &[&str] = &[
    "the",
    "of",
    "on",
    "in",
    "at",
    "with",
    "and",
    "then",
    "is",
    "are",
    "it",
    "its",
    "they",
    "their",
    "them",
    "both",
    "each",
    "other",
    "across",
    "along",
    "onto",
    "into",
    "over",
    "under",
    "from",
    "to",
    "behind",
    "past",
    "by",
    "while",
    "as",
    "before",
    "after",
    "finally",
    "until",
    "coming",
    "comes",
    "come",
    "came",
    "times",
    "time",
    "once",
    "twice",
    "several",
    "few",
    "high",
    "higher",
    "above",
    "floor",
    "ground",
    "scene",
    "video",
    "clip",
    "camera",
    "background",
    "view",
    "down",
    "up",
    "out",
    "toward",
    "towards",
    "this",
    "that",
    "there",
    "here",
    "under",
    "beneath",
    "around",
    "through",
    "away",
    "again",
    "other",
    "side",
    "sides",
    "middle",
    "center",
    "centre",
    "near",
    "nearby",
    "tall",
    "grey",
    "gray",
    "brown",
    "leafy",
    "brick",
    "narrow",
    "low",
    "short",
    "long",
    "clear",
    "slowly",
    "quickly",
    "gently",
    "fast",
    "slow",
    "softly",
    "lit",
    "light",
    "lighting",
    "filmed",
    "film",
    "films",
    "shows",
    "showing",
    "see",
    "seen",
    "we",
    "watch",
    "stays",
    "stay",
    "keeps",
    "holds",
    "remains",
    "still",
    "steadily",
    "continuous",
    "single",
    "closer",
    "close",
    "wider",
    "wide",
    "medium-shot",
    "framing",
    "halfway",
    "midway",
    "through",
    "partway",
    "lands",
    "land",
    "landing",
    "settles",
    "settling",
    "stops",
    "stop",
    "stopping",
    "halt",
    "comes",
    "moves",
    "move",
    "moving",
    "travels",
    "passes",
    "passing",
    "pass",
    "disappears",
    "disappearing",
    "vanishes",
    "reappears",
    "reappearing",
    "emerges",
    "emerging",
    "hidden",
    "hides",
    "goes",
    "going",
    "out",
    "again",
    "arc",
    "an",
    "air",
    "someone",
    "somebody",
    "rest",
    "which",
    "where",
    "who",
    "for",
    "lasts",
    "last",
    "lasting",
    "long",
    "set",
    "stands",
    "standing",
    "grows",
    "growing",
    "has",
    "have",
    "there's",
    "be",
    "being",
    "been",
    "just",
    "briefly",
    "sky's",
    "daylight's",
    "so",
    "against",
    "edge",
    "corner",
    "bottom",
    "top",
    "surface",
    "striped",
    "warm",
    "cool",
    "cold",
    "sun",
    "setting",
    "quiet",
    "calm",
    "simple",
    "plain",
    "segment",
    "up",
    "bit",
    "little",
    "meanwhile",
    "also",
    "too",
    "first",
    "next",
    "later",
    "soon",
    "now",
    "slightly",
    "takes",
    "take",
    "place",
    "happens",
    "view",
    "closeup",
];

/// Every word the parser knows, sorted and deduplicated: what a word-level tokenizer for
/// the world's captions needs.
pub fn vocabulary() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    v.extend(SHAPES.iter().map(|(w, _)| *w));
    v.extend(COLORS.iter().map(|(w, _)| *w));
    v.extend(SIZES.iter().map(|(w, _)| *w));
    v.extend(NUMBERS.iter().map(|(w, _)| *w));
    v.extend(ACTIONS.iter().map(|(w, _)| *w));
    v.extend(BACKGROUNDS.iter().map(|(w, _)| *w));
    v.extend(FLOORS.iter().map(|(w, _)| *w));
    v.extend(LIGHTING.iter().map(|(w, _)| *w));
    v.extend(OCCLUDERS.iter().map(|(w, _)| *w));
    for list in [LEFT, RIGHT, PAN, ZOOM, STATIC, COLLIDE, CUT, SHOT_NOUNS, SECONDS, OBJECT_NOUNS, STOP] {
        v.extend(list.iter().copied());
    }
    v.extend([
        "ramp", "ramps", "slope", "minute", "minutes", "lens", "shown", "back", "in", "still", "pulls", "pull", "close",
    ]);
    v.sort_unstable();
    v.dedup();
    v
}

fn lookup<T: Copy>(table: &[(&str, T)], w: &str) -> Option<T> {
    table.iter().find(|(k, _)| *k == w).map(|(_, v)| *v)
}

// ---------------------------------------------------------------------------------------
// The parser.

/// Verbs of motion along the floor that do not say how: a ball rolls, anything else
/// slides ("a box moves to the left", "the ball is kicked across the lawn"). Said of the
/// camera ("the camera moves left"), they pan it.
const MOVE: &[&str] = &["moves", "move", "moving", "travels", "goes", "going"];
/// The camera follows an object: it pans the way the object moves.
const FOLLOW: &[&str] = &["follows", "follow", "following", "followed", "tracks", "track", "tracking", "tracked"];
/// Objects moving apart: "roll in opposite directions", "slide apart".
const APART: &[&str] = &["opposite", "apart"];
/// Nouns of the stage and of the video: an adjective just before one is not an object's
/// ("on the big floor").
const PLACE_NOUNS: &[&str] = &[
    "floor",
    "ground",
    "scene",
    "video",
    "clip",
    "background",
    "view",
    "surface",
    "edge",
    "corner",
    "bottom",
    "top",
    "side",
    "sides",
    "middle",
    "center",
    "centre",
    "air",
    "sun",
    "segment",
    "screen",
    "frame",
    "picture",
    "path",
    "road",
    "terrain",
    "area",
    "spot",
    "animation",
    "footage",
    "movie",
];

/// What a verb or direction refers to.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Objects(Vec<usize>),
    Camera,
}

/// A verb said of objects: an action, or motion along the floor whose kind the shape
/// decides ([`MOVE`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verb {
    Act(Action),
    Move,
}

impl Verb {
    fn action(self, shape: Option<Shape>) -> Action {
        match self {
            Verb::Act(a) => a,
            Verb::Move if matches!(shape, None | Some(Shape::Ball)) => Action::Roll,
            Verb::Move => Action::Slide,
        }
    }
}

/// One word of a text: as written (lower case) and the word the parser reads it as
/// ([`lexicon::canonical`]). Sentence ends are the word ".".
struct Word {
    text: String,
    canon: String,
}

/// Sentences end at . ! ? ; (a verb's reach ends there); words split at spaces and
/// hyphens ("close-up", "3-second").
fn words(text: &str) -> Vec<Word> {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'");
    let mut out: Vec<Word> = Vec::new();
    let mut push = |w: &str| out.push(Word { text: w.to_string(), canon: lexicon::canonical(w).to_string() });
    for raw in lower.split_whitespace() {
        let ends = raw.ends_with(['.', '!', '?', ';']);
        let bare = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if bare.parse::<f64>().is_ok() {
            push(bare);
        } else {
            for part in raw.split(['-', '/']) {
                let w: String = part.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect();
                let w = w.trim_matches('\'');
                if !w.is_empty() {
                    push(w);
                }
            }
        }
        if ends {
            push(".");
        }
    }
    out
}

/// What the parser understood of a text, as [`understand`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    /// What the understood words state. It may name no object: [`crate::expand_lenient`]
    /// then draws one, as it draws every detail left unstated.
    pub description: Description,
    /// The words (lower case, in order, repeats kept) the parser read or knows as function
    /// words ("the", "of", "please").
    pub understood: Vec<String>,
    /// The other words (lower case, in order, repeats kept): what the description leaves
    /// out. A word the world has no picture for (a material, "shiny", a giraffe) is here.
    pub ignored: Vec<String>,
}

impl Understanding {
    /// The share of the text's words understood; 1 for a text with no words.
    pub fn share_understood(&self) -> f64 {
        let n = self.understood.len() + self.ignored.len();
        if n == 0 {
            1.0
        } else {
            self.understood.len() as f64 / n as f64
        }
    }

    /// The ignored words, each once, in order of first appearance.
    pub fn ignored_words(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for w in &self.ignored {
            if !out.contains(w) {
                out.push(w.clone());
            }
        }
        out
    }
}

/// Parses English within the world's vocabulary into a description; any word outside it
/// is an error (all of them listed), as is a text that names no object. [`understand`]
/// reads the same way but skips what it does not know.
pub fn parse(text: &str) -> Result<Description, ParseError> {
    let u = understand(text);
    if !u.ignored.is_empty() {
        return Err(ParseError::UnknownWords(u.ignored_words()));
    }
    if u.description.objects.is_empty() {
        return Err(ParseError::NoObject);
    }
    Ok(u.description)
}

/// The lenient parse, for prompts as people write them: reads `text` as [`parse`] does,
/// skipping the words it does not know and reporting them in
/// [`Understanding::ignored`]; never fails. Where [`parse`] succeeds, the description is
/// the same. Beyond the captions' vocabulary it reads synonyms and inflections
/// (language/lexicon.rs: "orb", "skids", "hurled"), motion verbs that leave the kind to the shape
/// ("moves", "is pushed"), verbs before their object ("someone throws a ball"), "toward
/// each other" and "in opposite directions", a camera that follows an object, an
/// adjective after its noun ("two balls, one red and one blue"), and a floor word before
/// a shape as the object's material ("a wooden box": ignored, the world draws no
/// materials).
pub fn understand(text: &str) -> Understanding {
    let words = words(text);
    let tokens: Vec<&str> = words.iter().map(|w| w.canon.as_str()).collect();
    let mut known = vec![true; tokens.len()];
    let mut d = Description::default();
    // The noun phrase being built; `stale` when a word that is not an object's came after
    // its adjectives (an unknown word, a place noun): they then attach to no earlier
    // object.
    let (mut count, mut color, mut size) = (None::<usize>, None::<Color>, None::<Size>);
    let mut stale = false;
    // Objects named since the last verb, and the last verb's target.
    let mut subjects: Vec<usize> = Vec::new();
    let mut last_subjects: Vec<usize> = Vec::new();
    let mut target: Option<Target> = None;
    let mut camera_context = false;
    let mut from_direction: Option<Direction> = None;
    let mut number_pending: Option<f64> = None;
    // A verb before any object ("someone throws a ball"): it acts on the next ones named.
    let mut pending_verb: Option<Verb> = None;
    let mut follow = false;

    let set_direction = |d: &mut Description, target: &Option<Target>, dir: Direction| match target {
        Some(Target::Objects(ids)) => {
            for &i in ids {
                d.objects[i].direction.get_or_insert(dir);
            }
        }
        Some(Target::Camera) => {
            let pan = if dir == Direction::Left { CameraMotion::PanLeft } else { CameraMotion::PanRight };
            if matches!(d.camera, None | Some(CameraMotion::PanLeft | CameraMotion::PanRight)) {
                d.camera = Some(pan);
            }
        }
        None => {}
    };
    let resolve_from = |d: &mut Description, target: &Option<Target>, from: &mut Option<Direction>| {
        if let Some(f) = from.take() {
            let dir = if f == Direction::Left { Direction::Right } else { Direction::Left };
            set_direction(d, target, dir);
        }
    };
    // Adjectives with no noun after them ("two balls, one red and one blue", "the ball is
    // red") describe the objects just named, in order; with none to take them they wait
    // for a noun ("a red bouncing ball").
    let attach =
        |d: &mut Description, who: &[usize], color: &mut Option<Color>, size: &mut Option<Size>, stale: bool| {
            if stale {
                return;
            }
            if let (Some(c), Some(&k)) = (*color, who.iter().find(|&&k| d.objects[k].color.is_none())) {
                d.objects[k].color = Some(c);
                *color = None;
            }
            if let (Some(s), Some(&k)) = (*size, who.iter().find(|&&k| d.objects[k].size.is_none())) {
                d.objects[k].size = Some(s);
                *size = None;
            }
        };
    // Directions that alternate over a group of objects, starting with `first`.
    let alternate = |d: &mut Description, target: &Option<Target>, first: Direction| {
        if let Some(Target::Objects(ids)) = target {
            if ids.len() >= 2 {
                for (n, &k) in ids.iter().enumerate() {
                    let other = if first == Direction::Left { Direction::Right } else { Direction::Left };
                    d.objects[k].direction.get_or_insert(if n % 2 == 0 { first } else { other });
                }
            }
        }
    };

    let mut i = 0;
    while i < tokens.len() {
        let w = tokens[i];
        let at = i;
        let prev = if i > 0 { tokens[i - 1] } else { "" };
        let next = tokens.get(i + 1).copied().unwrap_or("");
        i += 1;
        if w == "." {
            let who = if subjects.is_empty() { last_subjects.clone() } else { subjects.clone() };
            attach(&mut d, &who, &mut color, &mut size, stale);
            resolve_from(&mut d, &target, &mut from_direction);
            target = None;
            camera_context = false;
            subjects.clear();
            (count, color, size, stale, pending_verb) = (None, None, None, false, None);
            continue;
        }
        if let Ok(n) = w.parse::<f64>() {
            number_pending = Some(n);
            count = Some(n.max(0.0) as usize);
            continue;
        }
        if let Some(n) = lookup(NUMBERS, w).or_else(|| lexicon::number(w)) {
            // "one continuous shot", "three times", "a ball": resolved by the next noun.
            if !(w == "one" && OBJECT_NOUNS.contains(&next)) {
                count = Some(n);
                number_pending = Some(n as f64);
                continue;
            }
        }
        if SECONDS.contains(&w) {
            if let Some(n) = number_pending.take() {
                d.seconds = Some(n);
            }
            count = None;
            continue;
        }
        if w == "minute" || w == "minutes" {
            if let Some(n) = number_pending.take() {
                d.seconds = Some(n * 60.0);
            }
            count = None;
            continue;
        }
        if w == "times" || w == "time" {
            (count, number_pending) = (None, None);
            continue;
        }
        if SHOT_NOUNS.contains(&w) {
            camera_context = true;
            if let Some(n) = count.take() {
                // "cuts to a closer shot" counts one shot after a cut: keep the cut's count.
                d.shots = Some(match d.shots {
                    Some(s) if s >= 2 => s.max(n),
                    _ => n.max(1),
                });
            }
            number_pending = None;
            (color, size) = (None, None);
            continue;
        }
        if let Some(shape) = lookup(SHAPES, w) {
            let plural = w.ends_with('s') && w != "ball" || w.ends_with("es");
            let n = count.take().unwrap_or(if plural { 2 } else { 1 }).clamp(1, 8);
            let first = d.objects.len();
            for _ in 0..n {
                let action = pending_verb.map(|v| v.action(Some(shape)));
                d.objects.push(ObjectDescription { shape: Some(shape), color, size, action, direction: None });
                subjects.push(d.objects.len() - 1);
            }
            if pending_verb.is_some() {
                let named: Vec<usize> = (first..d.objects.len()).collect();
                last_subjects = named.clone();
                target = Some(Target::Objects(named));
            }
            (color, size, number_pending, stale) = (None, None, None, false);
            continue;
        }
        if OBJECT_NOUNS.contains(&w) {
            (count, color, size, number_pending) = (None, None, None, None);
            continue;
        }
        if let Some(c) = lookup(COLORS, w) {
            if color.is_some() {
                // A second colour before any noun: the first described an object named
                // already ("one red and one blue").
                attach(&mut d, &subjects, &mut color, &mut None, stale);
            }
            color = Some(c);
            stale = false;
            continue;
        }
        if let Some(s) = lookup(SIZES, w) {
            if size.is_some() {
                attach(&mut d, &subjects, &mut None, &mut size, stale);
            }
            size = Some(s);
            stale = false;
            continue;
        }
        if w == "camera" || w == "lens" {
            camera_context = true;
            target = Some(Target::Camera);
            continue;
        }
        if PAN.contains(&w) || (MOVE.contains(&w) && camera_context && subjects.is_empty()) {
            camera_context = true;
            target = Some(Target::Camera);
            // The direction follows: "pans left", "pans to the left".
            if !matches!(d.camera, Some(CameraMotion::PanLeft | CameraMotion::PanRight)) {
                d.camera = None;
            }
            continue;
        }
        if ZOOM.contains(&w)
            || (w == "close" && next == "in")
            || (matches!(w, "pulls" | "pull") && matches!(next, "back" | "out"))
        {
            camera_context = true;
            target = Some(Target::Camera);
            let dir_word = tokens[i..].iter().take(2).find(|t| matches!(**t, "in" | "out" | "back"));
            d.camera = Some(match dir_word.copied() {
                Some("out") | Some("back") => CameraMotion::ZoomOut,
                _ => CameraMotion::ZoomIn,
            });
            continue;
        }
        if FOLLOW.contains(&w) && camera_context {
            follow = true;
            continue;
        }
        if (STATIC.contains(&w) || (w == "still" && camera_context))
            && (camera_context || next == "camera" || next == "shot")
        {
            d.camera = Some(CameraMotion::Static);
            continue;
        }
        if LEFT.contains(&w) || RIGHT.contains(&w) {
            let dir = if LEFT.contains(&w) { Direction::Left } else { Direction::Right };
            if prev == "from" || (prev == "the" && i >= 3 && tokens[i - 3] == "from") {
                from_direction = Some(dir);
            } else {
                from_direction = None;
                set_direction(&mut d, &target, dir);
            }
            continue;
        }
        let verb = lookup(ACTIONS, w).map(Verb::Act).or(MOVE.contains(&w).then_some(Verb::Move));
        if let Some(v) = verb {
            // "comes to rest" and "rest" as a noun are not the resting action.
            let who = if subjects.is_empty() { last_subjects.clone() } else { std::mem::take(&mut subjects) };
            attach(&mut d, &who, &mut color, &mut size, stale);
            resolve_from(&mut d, &target, &mut from_direction);
            pending_verb = who.is_empty().then_some(v);
            for &k in &who {
                let o = &mut d.objects[k];
                if o.action.is_none() {
                    o.action = Some(v.action(o.shape));
                }
            }
            last_subjects = who.clone();
            target = Some(Target::Objects(who));
            camera_context = false;
            continue;
        }
        if w == "ramp" || w == "ramps" || w == "slope" {
            d.ramp = true;
            if let Some(Target::Objects(ids)) = &target {
                for &k in ids {
                    let o = &mut d.objects[k];
                    if matches!(o.action, None | Some(Action::Roll | Action::Slide)) {
                        o.action = Some(Action::Ramp);
                    }
                }
            }
            (color, size) = (None, None);
            continue;
        }
        if COLLIDE.contains(&w) {
            d.collide = true;
            let who = if subjects.is_empty() { last_subjects.clone() } else { std::mem::take(&mut subjects) };
            attach(&mut d, &who, &mut color, &mut size, stale);
            last_subjects = who.clone();
            target = Some(Target::Objects(who));
            continue;
        }
        if CUT.contains(&w) {
            d.shots = Some(d.shots.unwrap_or(1).max(2));
            continue;
        }
        if let Some(b) = lookup(BACKGROUNDS, w) {
            // "a starry sky", "a sunset sky": the sky alone only says it is outdoors by day.
            if w != "sky" || d.background.is_none() {
                d.background = Some(b);
            }
            (color, size, count) = (None, None, None);
            continue;
        }
        if let Some(f) = lookup(FLOORS, w) {
            // "a wooden box": the object's material, which the world does not draw.
            let after = tokens[i..].iter().find(|t| lookup(COLORS, t).is_none() && lookup(SIZES, t).is_none());
            if after.is_some_and(|t| lookup(SHAPES, t).is_some()) {
                known[at] = false;
                continue;
            }
            // "checkered tiles", "stone tiles": the compound's first word says which floor.
            if at == 0 || lookup(FLOORS, prev).is_none() || !known[at - 1] {
                d.floor = Some(f);
            }
            (color, size, count) = (None, None, None);
            continue;
        }
        if let Some(l) = lookup(LIGHTING, w) {
            d.lighting = Some(l);
            continue;
        }
        if let Some(o) = lookup(OCCLUDERS, w) {
            d.occluder = Some(o);
            (color, size, count) = (None, None, None);
            continue;
        }
        if (w == "toward" || w == "towards")
            && matches!((next, tokens.get(i + 1).copied()), ("each", Some("other")) | ("one", Some("another")))
        {
            // "roll toward each other": the first from the left, the second from the right.
            alternate(&mut d, &target, Direction::Right);
            i += 2;
            continue;
        }
        if APART.contains(&w) {
            alternate(&mut d, &target, Direction::Left);
            continue;
        }
        if PLACE_NOUNS.contains(&w) {
            stale |= color.is_some() || size.is_some();
        }
        // ("back" ends "pulls back"; "in" of "zooms in" is a stop word.)
        if w == "shown" || w == "back" || STOP.contains(&w) || w == "still" || STATIC.contains(&w) {
            if w == "still" && !camera_context {
                // "sits still": resting.
                let who = if subjects.is_empty() { last_subjects.clone() } else { std::mem::take(&mut subjects) };
                for &k in &who {
                    d.objects[k].action.get_or_insert(Action::Rest);
                }
            }
            continue;
        }
        if lexicon::is_function_word(w) {
            continue;
        }
        known[at] = false;
        stale |= color.is_some() || size.is_some();
    }
    let who = if subjects.is_empty() { last_subjects.clone() } else { subjects.clone() };
    attach(&mut d, &who, &mut color, &mut size, stale);
    resolve_from(&mut d, &target, &mut from_direction);
    if d.collide {
        for o in &mut d.objects {
            if o.action.is_none() {
                o.action = Some(if o.shape == Some(Shape::Ball) { Action::Roll } else { Action::Slide });
            }
        }
    }
    if follow && d.camera.is_none() {
        // "the camera follows it": it pans the way the first moving object goes.
        if let Some(dir) = d.objects.iter().find_map(|o| o.direction) {
            d.camera = Some(if dir == Direction::Left { CameraMotion::PanLeft } else { CameraMotion::PanRight });
        }
    }
    let (mut understood, mut ignored) = (Vec::new(), Vec::new());
    for (word, ok) in words.into_iter().zip(known) {
        if word.text == "." {
            continue;
        }
        if ok {
            understood.push(word.text);
        } else {
            ignored.push(word.text);
        }
    }
    Understanding { description: d, understood, ignored }
}

// ---------------------------------------------------------------------------------------
// The generator.

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// "a large red ball" (with size and colour as asked).
fn noun_phrase(o: &ObjectSpec, with_size: bool, with_color: bool) -> String {
    let mut words = Vec::new();
    if with_size {
        words.push(o.size.word());
    }
    if with_color {
        words.push(o.color.word());
    }
    words.push(o.shape.word());
    format!("{} {}", article(words[0]), words.join(" "))
}

fn times(n: usize) -> &'static str {
    match n {
        1 => "once",
        2 => "twice",
        3 => "three times",
        4 => "four times",
        _ => "several times",
    }
}

fn background_phrase(b: Background, rng: &mut Rng) -> &'static str {
    let options: &[&str] = match b {
        Background::Day => &["under a clear blue sky", "in daylight", "on a sunny day", "in the daytime"],
        Background::Sunset => &["at sunset", "at dusk", "in the evening at sunset", "under a sunset sky"],
        Background::Night => {
            &["at night under the stars", "on a starry night", "at night", "in the night under a starry sky"]
        }
        Background::Indoor => {
            &["indoors", "inside a room", "in a room with striped wallpaper", "indoors in a quiet room"]
        }
    };
    rng.pick::<&str>(options)
}

fn floor_phrase(f: Floor, rng: &mut Rng) -> &'static str {
    let options: &[&str] = match f {
        Floor::Grass => &["on the grass", "on a grassy lawn", "on a lawn", "on a grass meadow"],
        Floor::Wood => {
            &["on a wooden floor", "on wooden floorboards", "on a floor of wooden planks", "on a wood floor"]
        }
        Floor::Stone => &["on a stone floor", "on stone tiles", "on a paved stone floor", "on flagstones"],
        Floor::Checker => {
            &["on a checkered floor", "on a checkerboard floor", "on a chequered floor", "on a checker floor"]
        }
    };
    rng.pick::<&str>(options)
}

fn lighting_phrase(l: Lighting, rng: &mut Rng) -> &'static str {
    let options: &[&str] = match l {
        Lighting::Bright => &["brightly lit", "in bright light", "bright and sunlit"],
        Lighting::Normal => &["in soft, even light", "evenly lit", "in soft light"],
        Lighting::Dim => &["dimly lit", "in dim light", "dark and dimly lit"],
    };
    rng.pick::<&str>(options)
}

fn camera_sentence(c: CameraMotion, rng: &mut Rng) -> &'static str {
    let options: &[&str] = match c {
        CameraMotion::Static => &[
            "The camera stays still.",
            "A static camera films the scene.",
            "The camera is fixed.",
            "The shot is static.",
        ],
        CameraMotion::PanLeft => {
            &["The camera pans slowly to the left.", "The camera pans left.", "Slowly, the camera pans to the left."]
        }
        CameraMotion::PanRight => {
            &["The camera pans slowly to the right.", "The camera pans right.", "Slowly, the camera pans to the right."]
        }
        CameraMotion::ZoomIn => {
            &["The camera slowly zooms in.", "The camera zooms in.", "Slowly, the camera pushes in."]
        }
        CameraMotion::ZoomOut => &["The camera slowly zooms out.", "The camera zooms out.", "The camera pulls back."],
    };
    rng.pick::<&str>(options)
}

fn occluder_word(k: OccluderKind) -> &'static str {
    match k {
        OccluderKind::Pillar => "pillar",
        OccluderKind::Wall => "wall",
        OccluderKind::Tree => "tree",
    }
}

fn bounces_of(spec: &Spec, i: usize) -> usize {
    spec.events
        .iter()
        .filter(|e| matches!(e, Event::Bounce { object, speed, .. } if *object == i && *speed > 1.5))
        .count()
}

fn rests(spec: &Spec, i: usize) -> bool {
    spec.events.iter().any(|e| matches!(e, Event::Rest { object, .. } if *object == i))
}

/// What object `i` does, after its noun phrase: "rolls to the left and comes to a stop".
fn action_phrase(spec: &Spec, i: usize, rng: &mut Rng, detailed: bool) -> String {
    let o = &spec.objects[i];
    let dir = o.direction.map(|d| d.word()).unwrap_or("right");
    let n = bounces_of(spec, i);
    let bounce = if n > 0 && detailed { format!(" and bounces {}", times(n)) } else { String::new() };
    let stop = if detailed && rests(spec, i) && o.action != Action::Rest {
        rng.pick(&[" before it comes to a stop", ", then settles", " and finally stops"]).to_string()
    } else {
        String::new()
    };
    let core = match o.action {
        Action::Rest => rng.pick(&["sits still", "rests", "lies motionless", "sits"]).to_string(),
        Action::Drop => {
            let v = rng.pick(&["falls", "drops", "is dropped", "falls from high above"]);
            if n > 0 && detailed {
                format!("{v}{bounce}")
            } else if rng.chance(0.5) {
                "bounces".to_string()
            } else {
                format!("{v} and bounces")
            }
        }
        Action::Roll => format!("{} to the {dir}", rng.pick(&["rolls", "rolls along", "rolls across the floor"])),
        Action::Slide => format!("{} to the {dir}", rng.pick(&["slides", "slides along", "glides"])),
        Action::Throw => format!(
            "{} to the {dir}{}",
            rng.pick(&["is thrown", "is tossed", "flies in an arc"]),
            if detailed { " and lands" } else { "" }
        ),
        Action::Ramp => {
            let v = if o.shape == Shape::Ball { "rolls" } else { "slides" };
            format!("{v} down a ramp to the {dir}")
        }
    };
    let bounce_tail = if detailed && n > 0 && matches!(o.action, Action::Throw) {
        format!(", bouncing {}", times(n))
    } else {
        String::new()
    };
    format!("{core}{bounce_tail}{stop}")
}

/// A detailed caption of the whole clip, in several sentences.
pub fn caption(spec: &Spec, rng: &mut Rng) -> String {
    let mut s: Vec<String> = Vec::new();
    // The setting first: no directions in it, so later ones attach to motions.
    let scene = match rng.below(3) {
        0 => format!(
            "The scene is set {} {}, {}.",
            background_phrase(spec.background, rng),
            floor_phrase(spec.floor, rng),
            lighting_phrase(spec.lighting, rng)
        ),
        1 => format!(
            "{} {}, the scene is {}.",
            capitalize(background_phrase(spec.background, rng)),
            floor_phrase(spec.floor, rng),
            lighting_phrase(spec.lighting, rng)
        ),
        _ => format!(
            "It takes place {} {}, {}.",
            floor_phrase(spec.floor, rng),
            background_phrase(spec.background, rng),
            lighting_phrase(spec.lighting, rng)
        ),
    };
    s.push(scene);
    if !spec.ramps.is_empty() {
        s.push(
            rng.pick(&["There is a ramp.", "A ramp stands on the floor.", "There is a ramp on the floor."]).to_string(),
        );
    }
    if let Some(o) = spec.occluders.first() {
        let phrase = match o.kind {
            OccluderKind::Pillar => rng.pick(&["a tall pillar", "a grey pillar", "a tall grey pillar"]),
            OccluderKind::Wall => rng.pick(&["a brick wall", "a low brick wall", "a short wall segment"]),
            OccluderKind::Tree => rng.pick(&["a tree", "a leafy tree", "a tall tree"]),
        };
        s.push(format!("{} {}.", rng.pick(&["There is", "Nearby there is", "In the middle there is"]), phrase));
    }
    for (i, o) in spec.objects.iter().enumerate() {
        let mut sentence = format!("{} {}", capitalize(&noun_phrase(o, true, true)), action_phrase(spec, i, rng, true));
        let hidden = spec.events.iter().find_map(|e| match e {
            Event::Hidden { object, occluder, .. } if *object == i => Some(*occluder),
            _ => None,
        });
        if let Some(k) = hidden {
            let back = spec.events.iter().any(|e| matches!(e, Event::Reappear { object, .. } if *object == i));
            let w = occluder_word(spec.occluders[k].kind);
            sentence.push_str(&if back {
                format!(
                    ". It passes behind the {w} and {}",
                    rng.pick(&["comes out on the other side", "reappears", "emerges again"])
                )
            } else {
                format!(". It disappears behind the {w}")
            });
        }
        s.push(format!("{sentence}."));
    }
    if spec.collide {
        s.push(
            rng.pick(&["They collide.", "They meet and collide.", "The objects collide with each other."]).to_string(),
        );
    }
    s.push(camera_sentence(spec.camera, rng).to_string());
    if spec.shots.len() > 1 {
        s.push(
            rng.pick(&[
                "Halfway through, the video cuts to a closer view.",
                "Midway, it cuts to a close-up.",
                "Then it cuts to a closer shot.",
            ])
            .to_string(),
        );
    } else if rng.chance(0.5) {
        s.push(rng.pick(&["It is filmed in one continuous shot.", "It is a single continuous shot."]).to_string());
    }
    if rng.chance(0.5) {
        // Two decimals at most ("1.33 seconds", not 1.3333333333333333).
        let n = format!("{:.2}", spec.seconds).trim_end_matches('0').trim_end_matches('.').to_string();
        s.push(format!("The clip lasts {n} seconds."));
    }
    s.join(" ")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A short prompt: the objects and what they do, sometimes where and how it is filmed.
pub fn prompt(spec: &Spec, rng: &mut Rng) -> String {
    let gerund = rng.chance(0.25) && spec.objects.len() == 1;
    let mut parts: Vec<String> = Vec::new();
    for (i, o) in spec.objects.iter().enumerate() {
        let with_size = rng.chance(0.4);
        if gerund {
            let np = noun_phrase(o, with_size, true);
            let np = np.split_once(' ').map(|(_, rest)| rest.to_string()).unwrap_or(np);
            let verb = match o.action {
                Action::Rest => "sitting still".to_string(),
                Action::Drop => "bouncing".to_string(),
                Action::Roll => format!("rolling {}", o.direction.map_or("", |d| d.word())),
                Action::Slide => format!("sliding {}", o.direction.map_or("", |d| d.word())),
                Action::Throw => format!("thrown {}", o.direction.map_or("", |d| d.word())),
                Action::Ramp => format!("{} down a ramp", if o.shape == Shape::Ball { "rolling" } else { "sliding" }),
            };
            parts.push(format!("{np} {}", verb.trim()));
        } else {
            parts.push(format!("{} {}", noun_phrase(o, with_size, true), action_phrase(spec, i, rng, false)));
        }
        if let (Some(k), true) = (spec.occluders.first(), i == 0 && rng.chance(0.6)) {
            if spec.events.iter().any(|e| matches!(e, Event::Hidden { object: 0, .. })) {
                parts.push(format!("passes behind a {}", occluder_word(k.kind)));
            }
        }
    }
    let mut text = parts.join(if rng.chance(0.5) { " while " } else { " and " });
    if spec.collide && rng.chance(0.8) {
        text.push_str(" and they collide");
    }
    if rng.chance(0.6) {
        text.push(' ');
        text.push_str(floor_phrase(spec.floor, rng));
    }
    if rng.chance(0.5) {
        text.push(' ');
        text.push_str(background_phrase(spec.background, rng));
    }
    if spec.camera != CameraMotion::Static && rng.chance(0.6) {
        let c = camera_sentence(spec.camera, rng).trim_end_matches('.').to_lowercase();
        text.push_str(", ");
        text.push_str(&c);
    }
    text
}

/// A prompt and exactly what it states, as the parser reads it.
pub fn prompt_with_description(spec: &Spec, rng: &mut Rng) -> (String, Description) {
    let p = prompt(spec, rng);
    let d = parse(&p).expect("generated prompts parse");
    (p, d)
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
