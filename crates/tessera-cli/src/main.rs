//! `tessera`: the command-line front end. Argument parsing and wiring only; the work is
//! done by the library crates (DESIGN.md).

mod generate;
mod output;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Sora-style video generation on your own machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a video (or an image) from a text prompt.
    Generate(generate::GenerateArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
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
