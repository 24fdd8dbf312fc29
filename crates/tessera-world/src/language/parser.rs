//! The parser: English within the world's vocabulary read back into a [`Description`],
//! strictly ([`parse`]) or leniently ([`understand`]).

use super::vocabulary::*;
use super::*;

/// Verbs of motion along the floor that do not say how: a ball rolls, anything else
/// slides ("a box moves to the left", "the ball is kicked across the lawn"). Said of the
/// camera ("the camera moves left"), they pan it.
pub(super) const MOVE: &[&str] = &["moves", "move", "moving", "travels", "goes", "going"];
/// The camera follows an object: it pans the way the object moves.
pub(super) const FOLLOW: &[&str] =
    &["follows", "follow", "following", "followed", "tracks", "track", "tracking", "tracked"];
/// Objects moving apart: "roll in opposite directions", "slide apart".
pub(super) const APART: &[&str] = &["opposite", "apart"];
/// Nouns of the stage and of the video: an adjective just before one is not an object's
/// ("on the big floor").
pub(super) const PLACE_NOUNS: &[&str] = &[
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
pub(super) enum Target {
    Objects(Vec<usize>),
    Camera,
}

/// A verb said of objects: an action, or motion along the floor whose kind the shape
/// decides ([`MOVE`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Verb {
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
pub(super) struct Word {
    text: String,
    canon: String,
}

/// Sentences end at . ! ? ; (a verb's reach ends there); words split at spaces and
/// hyphens ("close-up", "3-second").
pub(super) fn words(text: &str) -> Vec<Word> {
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
