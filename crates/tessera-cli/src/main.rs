//! `tessera`: the command-line front end. Argument parsing and wiring only; the work is
//! done by the library crates (docs/ARCHITECTURE.md, Conventions).

mod cache;
mod generate;
mod keys;
mod output;
mod progress;
mod serve;
mod tasks;
mod train;
mod verify;
mod world;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Sora-style video generation on your own machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest frame an input image or video may declare, in pixels (inputs declaring more
    /// are refused before anything is allocated for them).
    #[arg(long, global = true, value_name = "PIXELS", default_value_t = tessera_media::DecodeLimits::default().max_pixels)]
    max_input_pixels: usize,
    /// Most frames an input video may declare.
    #[arg(long, global = true, value_name = "FRAMES", default_value_t = tessera_media::DecodeLimits::default().max_frames)]
    max_input_frames: usize,
    /// Most MiB an input's decoded frames may take together.
    #[arg(long, global = true, value_name = "MIB", default_value_t = tessera_media::DecodeLimits::default().max_bytes >> 20)]
    max_input_mib: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a video (or an image) from a text prompt.
    Generate(generate::GenerateArgs),
    /// Generate an image: `tessera image PROMPT --size WxH -o out.png`.
    Image(generate::GenerateArgs),
    /// The world: render captioned physics clips, print prompt suites, expand prompts.
    #[command(subcommand)]
    World(world::WorldCommand),
    /// Train a world model: a Wan-architecture transformer and text encoder on the world.
    Train(train::TrainArgs),
    /// What provenance a file carries: its C2PA manifest and tessera's invisible watermark.
    Verify(verify::VerifyArgs),
    /// The C2PA signing keys: `tessera keys init` makes a local CA and signing certificate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Serve the OpenAI-compatible /v1/videos API, its job queue and the web studio.
    Serve(serve::ServeArgs),
    /// Score videos against a prompt suite (adherence, motion, physics, permanence,
    /// consistency, overall).
    Eval(world::EvalArgs),
    /// Measure MagCache's magnitude ratios for a model (for `--cache magcache`).
    CacheCalibrate(cache::CalibrateArgs),
}

fn main() {
    tessera_models::allocator::tune();
    let cli = Cli::parse();
    tessera_media::set_decode_limits(tessera_media::DecodeLimits {
        max_pixels: cli.max_input_pixels,
        max_frames: cli.max_input_frames,
        max_bytes: cli.max_input_mib.saturating_mul(1 << 20),
    });
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Image(args) => generate::run_image(args),
        Command::World(cmd) => world::run(cmd),
        Command::Eval(args) => world::eval(args),
        Command::Train(args) => train::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::CacheCalibrate(args) => cache::calibrate(args),
    };
    if let Err(e) = result {
        // One clear line (plus causes, if any), no backtrace, nonzero exit. candle appends
        // a backtrace to its messages when RUST_BACKTRACE is set: keep the first line.
        let first_line = |m: String| m.lines().next().unwrap_or_default().to_string();
        eprintln!("error: {}", first_line(e.to_string()));
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {}", first_line(cause.to_string()));
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parses(args: &[&str]) -> bool {
        Cli::try_parse_from(std::iter::once("tessera").chain(args.iter().copied())).is_ok()
    }

    /// The flags the engine's options reach `serve` and `cache-calibrate` by.
    #[test]
    fn serve_and_cache_calibrate_take_the_engine_flags() {
        assert!(parses(&["serve", "--vae-tiling", "on"]));
        assert!(parses(&["serve", "--vae-tiling", "off", "--quantize", "q8_0"]));
        assert!(!parses(&["serve", "--vae-tiling", "sideways"]));
        assert!(parses(&["cache-calibrate", "--quantize", "q4_k", "--gguf", "a.gguf", "--gguf", "b.gguf"]));
        assert!(!parses(&["cache-calibrate", "--quantize", "q3"]));
    }
}
