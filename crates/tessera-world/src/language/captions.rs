//! The generator: detailed captions and short prompts from a spec, with varied phrasing
//! (every phrasing in the parser's vocabulary).

use super::*;

pub(super) fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// "a large red ball" (with size and colour as asked).
pub(super) fn noun_phrase(o: &ObjectSpec, with_size: bool, with_color: bool) -> String {
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

pub(super) fn times(n: usize) -> &'static str {
    match n {
        1 => "once",
        2 => "twice",
        3 => "three times",
        4 => "four times",
        _ => "several times",
    }
}

pub(super) fn background_phrase(b: Background, rng: &mut Rng) -> &'static str {
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

pub(super) fn floor_phrase(f: Floor, rng: &mut Rng) -> &'static str {
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

pub(super) fn lighting_phrase(l: Lighting, rng: &mut Rng) -> &'static str {
    let options: &[&str] = match l {
        Lighting::Bright => &["brightly lit", "in bright light", "bright and sunlit"],
        Lighting::Normal => &["in soft, even light", "evenly lit", "in soft light"],
        Lighting::Dim => &["dimly lit", "in dim light", "dark and dimly lit"],
    };
    rng.pick::<&str>(options)
}

pub(super) fn camera_sentence(c: CameraMotion, rng: &mut Rng) -> &'static str {
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

pub(super) fn occluder_word(k: OccluderKind) -> &'static str {
    match k {
        OccluderKind::Pillar => "pillar",
        OccluderKind::Wall => "wall",
        OccluderKind::Tree => "tree",
    }
}

pub(super) fn bounces_of(spec: &Spec, i: usize) -> usize {
    spec.events
        .iter()
        .filter(|e| matches!(e, Event::Bounce { object, speed, .. } if *object == i && *speed > 1.5))
        .count()
}

pub(super) fn rests(spec: &Spec, i: usize) -> bool {
    spec.events.iter().any(|e| matches!(e, Event::Rest { object, .. } if *object == i))
}

/// What object `i` does, after its noun phrase: "rolls to the left and comes to a stop".
pub(super) fn action_phrase(spec: &Spec, i: usize, rng: &mut Rng, detailed: bool) -> String {
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

pub(super) fn capitalize(s: &str) -> String {
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
