//! The signing credentials of C2PA manifests: a local certificate authority and a P-256
//! signing certificate issued by it, as `tessera keys init` writes them.
//!
//! The C2PA trust model refuses self-signed signers (C2PA 2.1, 14.5.1; c2pa-rs
//! `check_certificate_profile`), so the signer is an end-entity certificate with
//! digitalSignature key usage and the emailProtection and C2PA claim-signing extended
//! key usages, and the chain embedded in each manifest is leaf + CA. The CA's private
//! key signs that one certificate and is then dropped: nothing on disk can issue more.
//!
//! Files in the keys folder: `signer.pem` (leaf then CA certificate), `signer.key` (the
//! leaf's PKCS#8 key, mode 0600), `ca.pem` (the CA alone: what a verifier trusts).

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

pub const SIGNER_CHAIN: &str = "signer.pem";
pub const SIGNER_KEY: &str = "signer.key";
pub const CA_CERT: &str = "ca.pem";

/// C2PA's own claim-signing extended key usage (id-kp-c2pa-claimSigning).
const C2PA_CLAIM_SIGNING: [u64; 9] = [1, 3, 6, 1, 4, 1, 62558, 2, 1];

/// A signing certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct Credentials {
    pub chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("chain_pem", &self.chain_pem.len()).finish_non_exhaustive()
    }
}

/// Whether `dir` holds a complete set of credentials.
pub fn exist(dir: &Path) -> bool {
    [SIGNER_CHAIN, SIGNER_KEY, CA_CERT].iter().all(|f| dir.join(f).is_file())
}

/// Reads the credentials in `dir`.
pub fn load(dir: &Path) -> Result<Credentials> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| Error::Read { path, source })
    };
    Ok(Credentials { chain_pem: read(SIGNER_CHAIN)?, key_pem: read(SIGNER_KEY)? })
}

/// The local CA's certificate (PEM) in `dir`, if there is one.
pub fn ca_pem(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(CA_CERT)).ok()
}

/// Makes a CA and a signing certificate in `dir` (created if missing). Refuses to replace
/// existing credentials unless `force`. The files appear together: they are written to a
/// sibling folder first and moved into place, so a concurrent first use sees all or none.
pub fn init(dir: &Path, subject: &str, force: bool) -> Result<()> {
    if exist(dir) && !force {
        return Err(Error::Invalid(format!(
            "{} already holds signing keys (pass --force to replace them)",
            dir.display()
        )));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_path_buf(), source })?;
    let staging = crate::temp_path(dir);
    let written = (|| -> Result<()> {
        std::fs::create_dir_all(&staging).map_err(|source| Error::Write { path: staging.clone(), source })?;
        let (ca, chain, key) = generate(subject)?;
        write_file(&staging.join(CA_CERT), ca.as_bytes(), 0o644)?;
        write_file(&staging.join(SIGNER_CHAIN), chain.as_bytes(), 0o644)?;
        write_file(&staging.join(SIGNER_KEY), key.as_bytes(), 0o600)?;
        Ok(())
    })();
    let moved = written.and_then(|_| {
        if force && dir.exists() {
            for f in [CA_CERT, SIGNER_CHAIN, SIGNER_KEY] {
                std::fs::rename(staging.join(f), dir.join(f))
                    .map_err(|source| Error::Write { path: dir.join(f), source })?;
            }
            return Ok(());
        }
        match std::fs::rename(&staging, dir) {
            Ok(()) => Ok(()),
            // Another process made them meanwhile (or `dir` is an empty folder).
            Err(_) if exist(dir) => Ok(()),
            Err(_) if dir.is_dir() => {
                for f in [CA_CERT, SIGNER_CHAIN, SIGNER_KEY] {
                    std::fs::rename(staging.join(f), dir.join(f))
                        .map_err(|source| Error::Write { path: dir.join(f), source })?;
                }
                Ok(())
            }
            Err(source) => Err(Error::Write { path: dir.to_path_buf(), source }),
        }
    });
    let _ = std::fs::remove_dir_all(&staging);
    moved
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .map_err(|source| Error::Write { path: path.to_path_buf(), source })
}

/// A fresh P-256 key, as rcgen signs with it (rcgen's own keys need ring, C code).
struct P256Key {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl P256Key {
    fn random() -> Result<Self> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| Error::Invalid(format!("no randomness for a key: {e}")))?;
            // Out-of-range scalars (probability ~2^-32) are simply redrawn.
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&bytes) {
                let public = key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
                return Ok(P256Key { key, public });
            }
        }
    }
}

impl rcgen::PublicKeyData for P256Key {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Key {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// Without rcgen's crypto backend, serial numbers and key identifiers are ours to give:
/// random serials, and RFC 7093's method 1 (the first 160 bits of SHA-256 of the key).
fn params(name: &str, key: &P256Key, years: i64) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "tessera (local)");
    p.distinguished_name = dn;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| Error::Invalid(format!("no randomness for a serial: {e}")))?;
    serial[0] &= 0x7f;
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.key_identifier_method = KeyIdMethod::PreSpecified(Sha256::digest(&key.public)[..20].to_vec());
    let now = time::OffsetDateTime::now_utc();
    // A day's slack for clocks that lag the one that made the keys.
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(365 * years);
    Ok(p)
}

/// (CA certificate, signer chain, signer key), all PEM.
fn generate(subject: &str) -> Result<(String, String, String)> {
    let err = |e: rcgen::Error| Error::Invalid(format!("cannot make the signing certificates: {e}"));
    let ca_key = P256Key::random()?;
    let mut ca = params(&format!("{subject} local CA"), &ca_key, 20)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let leaf_key = P256Key::random()?;
    let mut leaf = params(&format!("{subject} signer"), &leaf_key, 10)?;
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::EmailProtection, ExtendedKeyUsagePurpose::Other(C2PA_CLAIM_SIGNING.to_vec())];
    leaf.use_authority_key_identifier_extension = true;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;

    let key_pem = leaf_key
        .key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Invalid(format!("cannot encode the signing key: {e}")))?;
    let ca_pem = ca_cert.pem();
    Ok((ca_pem.clone(), format!("{}{}", leaf_cert.pem(), ca_pem), key_pem.to_string()))
}

/// $TESSERA_KEYS, else $XDG_CONFIG_HOME/tessera/keys, else ~/.config/tessera/keys.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TESSERA_KEYS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("tessera/keys"))
}
