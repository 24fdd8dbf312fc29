//! The world's vocabulary and the two descriptions of a clip:
//! - [`Spec`]: everything needed to simulate and render it (positions, velocities, camera,
//!   shots) plus the events the simulation produced. JSON in `world render` / `prompts`.
//! - [`Description`]: what a prompt states about a clip, every field optional. The parser
//!   produces one from English; a spec reduces to one ([`Spec::describe`]); the evaluator
//!   scores a video against one, so it checks only what was asked.

use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The word used in JSON and in captions.
            pub fn word(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.word())
            }
        }
    };
}

vocabulary!(
    /// The three object shapes.
    Shape { Ball = "ball", Box = "box", Triangle = "triangle" }
);
vocabulary!(
    /// Object sizes; [`Size::radius`] gives metres.
    Size { Small = "small", Medium = "medium", Large = "large" }
);
vocabulary!(
    /// The object palette. These colours are used only for objects: no background, floor
    /// or occluder colour comes near them, so the evaluator can segment objects by colour.
    Color {
        Red = "red", Orange = "orange", Yellow = "yellow", Green = "green",
        Blue = "blue", Purple = "purple", White = "white", Black = "black",
    }
);
vocabulary!(
    Background { Day = "day", Sunset = "sunset", Night = "night", Indoor = "indoor" }
);
vocabulary!(
    Floor { Grass = "grass", Wood = "wood", Stone = "stone", Checker = "checker" }
);
vocabulary!(
    Lighting { Bright = "bright", Normal = "normal", Dim = "dim" }
);
vocabulary!(
    CameraMotion {
        Static = "static", PanLeft = "pan_left", PanRight = "pan_right",
        ZoomIn = "zoom_in", ZoomOut = "zoom_out",
    }
);
vocabulary!(
    /// What an object does in a clip.
    Action {
        /// Sits still on the floor.
        Rest = "rest",
        /// Dropped from a height; falls and bounces.
        Drop = "drop",
        /// Rolls (a ball) along the floor.
        Roll = "roll",
        /// Slides (a box or triangle) along the floor.
        Slide = "slide",
        /// Thrown with an initial velocity in an arc.
        Throw = "throw",
        /// Released on a ramp; rolls or slides down it.
        Ramp = "ramp",
    }
);
vocabulary!(
    Direction { Left = "left", Right = "right" }
);
vocabulary!(
    OccluderKind { Pillar = "pillar", Wall = "wall", Tree = "tree" }
);
vocabulary!(
    /// How tightly a shot frames the scene.
    Framing { Wide = "wide", Medium = "medium", Close = "close" }
);

impl Color {
    /// The palette's sRGB value.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Color::Red => [220, 40, 40],
            Color::Orange => [245, 140, 30],
            Color::Yellow => [240, 210, 40],
            Color::Green => [40, 170, 70],
            Color::Blue => [50, 90, 220],
            Color::Purple => [150, 60, 190],
            Color::White => [240, 240, 240],
            Color::Black => [25, 25, 25],
        }
    }
}

impl Size {
    /// The object's nominal radius in metres (a ball's radius; boxes and triangles are
    /// scaled to a similar area).
    pub fn radius(self) -> f64 {
        match self {
            Size::Small => 0.25,
            Size::Medium => 0.4,
            Size::Large => 0.6,
        }
    }
}

impl Framing {
    /// Visible width of the world in metres.
    pub fn view_width(self) -> f64 {
        match self {
            Framing::Wide => 8.0,
            Framing::Medium => 5.5,
            Framing::Close => 3.8,
        }
    }
}

impl Lighting {
    /// Multiplier on the scene's background, floor and occluders.
    pub fn level(self) -> f32 {
        match self {
            Lighting::Bright => 1.0,
            Lighting::Normal => 0.88,
            Lighting::Dim => 0.72,
        }
    }
}

/// One object: what it is, what it does, and its initial state (metres, metres/second;
/// x to the right, y up, the floor at y = 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectSpec {
    pub shape: Shape,
    pub color: Color,
    pub size: Size,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Centre position at t = 0.
    pub x: f64,
    pub y: f64,
    pub vx: f64,
    pub vy: f64,
    /// Initial rotation (radians) and angular velocity (radians/second, counter-clockwise).
    #[serde(default)]
    pub angle: f64,
    #[serde(default)]
    pub spin: f64,
}

/// An occluder stands in front of the objects' plane: objects pass behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OccluderSpec {
    pub kind: OccluderKind,
    /// Centre x in metres.
    pub x: f64,
}

impl OccluderSpec {
    /// Half width and height in metres of the occluding part.
    pub fn extent(&self) -> (f64, f64) {
        match self.kind {
            OccluderKind::Pillar => (0.45, 3.2),
            OccluderKind::Wall => (0.9, 1.6),
            OccluderKind::Tree => (0.75, 3.6),
        }
    }
}

/// A ramp: a wedge on the floor rising from `x_low` (height 0) to `x_high` (height
/// `height`); its steep side is vertical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampSpec {
    pub x_low: f64,
    pub x_high: f64,
    pub height: f64,
}

/// One shot: from `start` seconds until the next shot's start (a cut) or the clip's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shot {
    pub start: f64,
    pub framing: Framing,
    /// The x the shot centres on, in metres.
    pub center: f64,
}

/// What happened, found by the simulation and the camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// An object hit the floor (or a ramp) and bounced back up.
    Bounce { t: f64, object: usize, speed: f64 },
    /// An object hit a side wall.
    HitWall { t: f64, object: usize },
    /// Two objects collided.
    Collision { t: f64, objects: [usize; 2] },
    /// An object came to rest.
    Rest { t: f64, object: usize },
    /// An object went fully behind an occluder ...
    Hidden { t: f64, object: usize, occluder: usize },
    /// ... and came out again.
    Reappear { t: f64, object: usize, occluder: usize },
    /// The camera cut to another shot.
    Cut { t: f64 },
}

impl Event {
    pub fn time(&self) -> f64 {
        match *self {
            Event::Bounce { t, .. }
            | Event::HitWall { t, .. }
            | Event::Collision { t, .. }
            | Event::Rest { t, .. }
            | Event::Hidden { t, .. }
            | Event::Reappear { t, .. }
            | Event::Cut { t } => t,
        }
    }
}

/// Everything needed to simulate and render a clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Duration in seconds.
    pub seconds: f64,
    pub background: Background,
    pub floor: Floor,
    pub lighting: Lighting,
    pub camera: CameraMotion,
    /// At least one; `shots[0].start == 0`, the others are cuts.
    pub shots: Vec<Shot>,
    pub objects: Vec<ObjectSpec>,
    #[serde(default)]
    pub occluders: Vec<OccluderSpec>,
    #[serde(default)]
    pub ramps: Vec<RampSpec>,
    /// Filled by [`crate::simulate`]; ignored on input.
    #[serde(default)]
    pub events: Vec<Event>,
    /// Set when the objects were set up to collide with each other.
    #[serde(default)]
    pub collide: bool,
}

/// What a prompt says about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDescription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
}

/// What a prompt states about a clip. Unstated fields are `None` and are neither scored
/// by the evaluator nor fixed by the scene generator (it picks them at random).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Description {
    pub objects: Vec<ObjectDescription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Background>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lighting: Option<Lighting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<CameraMotion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occluder: Option<OccluderKind>,
    #[serde(default)]
    pub ramp: bool,
    #[serde(default)]
    pub collide: bool,
    /// Number of shots, when the prompt says (1 = one continuous shot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl Spec {
    /// Everything the spec fixes, as a description (all fields stated).
    pub fn describe(&self) -> Description {
        Description {
            objects: self
                .objects
                .iter()
                .map(|o| ObjectDescription {
                    shape: Some(o.shape),
                    color: Some(o.color),
                    size: Some(o.size),
                    action: Some(o.action),
                    direction: o.direction,
                })
                .collect(),
            background: Some(self.background),
            floor: Some(self.floor),
            lighting: Some(self.lighting),
            camera: Some(self.camera),
            occluder: self.occluders.first().map(|o| o.kind),
            ramp: !self.ramps.is_empty(),
            collide: self.collide,
            shots: Some(self.shots.len()),
            seconds: Some(self.seconds),
        }
    }

    /// The framing (view width, centre x, bottom y, all metres) of the camera at time `t`.
    pub fn camera_at(&self, t: f64) -> View {
        let shot = self.shots.iter().rev().find(|s| s.start <= t).or(self.shots.first());
        let (framing, center) = shot.map_or((Framing::Wide, 0.0), |s| (s.framing, s.center));
        let u = if self.seconds > 0.0 { (t / self.seconds).clamp(0.0, 1.0) } else { 0.0 };
        // Smooth start and stop, as a camera operator would.
        let e = u * u * (3.0 - 2.0 * u);
        let mut width = framing.view_width();
        let mut cx = center;
        match self.camera {
            CameraMotion::Static => {}
            CameraMotion::PanLeft => cx -= PAN_METRES * (e - 0.5),
            CameraMotion::PanRight => cx += PAN_METRES * (e - 0.5),
            CameraMotion::ZoomIn => width *= 1.0 - ZOOM_FRACTION * e,
            CameraMotion::ZoomOut => width *= 1.0 - ZOOM_FRACTION * (1.0 - e),
        }
        View { width, center_x: cx }
    }
}

/// How far a pan travels over a clip, and how much of the view a zoom takes away.
pub const PAN_METRES: f64 = 3.0;
pub const ZOOM_FRACTION: f64 = 0.4;
/// The side walls of the stage.
pub const WALL_X: f64 = 6.0;
/// The floor line sits this far up from the bottom of the frame, as a fraction of the
/// frame height, whatever the framing: zooms and cuts keep the horizon still.
pub const FLOOR_ROW: f64 = 0.22;

/// A camera view: the visible world width and the x at the frame's centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub width: f64,
    pub center_x: f64,
}
