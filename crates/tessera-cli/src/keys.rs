//! `tessera keys init [--dir DIR] [--force]`: the local CA and signing certificate that
//! sign the C2PA manifest of every output (tessera_media::keys). `tessera generate` makes
//! them on first use when they are missing, and says so, so that no output goes out
//! unsigned for want of a setup step.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use tessera_media::keys::{self, Credentials};

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a local CA and a C2PA signing certificate issued by it.
    Init(InitArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Where to put them [default: $TESSERA_KEYS, else ~/.config/tessera/keys].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Replace keys that are already there (files signed before stay valid, but they
    /// chain to the old CA).
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Init(a) => {
            let dir = resolve(a.dir.as_deref())?;
            keys::init(&dir, "tessera", a.force)?;
            println!("made a local CA and a C2PA signing certificate in {}", dir.display());
            println!(
                "  {} (signer + CA chain), {} (private key), {} (the CA: what verifiers trust)",
                keys::SIGNER_CHAIN,
                keys::SIGNER_KEY,
                keys::CA_CERT
            );
            Ok(())
        }
    }
}

/// `dir`, else the default keys folder.
pub fn resolve(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => keys::default_dir().ok_or_else(|| {
            anyhow!("no folder for the signing keys: pass --keys DIR or set $TESSERA_KEYS (or use --no-provenance)")
        }),
    }
}

/// The credentials to sign outputs with, made first (and said on stderr, even with
/// --quiet) when the folder has none.
pub fn for_signing(dir: Option<&Path>) -> Result<Credentials> {
    let dir = resolve(dir)?;
    if !keys::exist(&dir) {
        keys::init(&dir, "tessera", false).with_context(|| {
            format!(
                "cannot make C2PA signing keys in {} (run `tessera keys init --dir DIR` and pass --keys DIR)",
                dir.display()
            )
        })?;
        eprintln!("note: made a local CA and C2PA signing certificate in {} (as `tessera keys init` does); outputs are signed with it", dir.display());
    }
    Ok(keys::load(&dir)?)
}
