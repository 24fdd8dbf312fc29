//! Randomness of the world: the workspace's seeded generator (tessera_media::rng, shared
//! with the trainer and the sampler) and a stateless hash for textures.

pub use tessera_media::rng::Rng;

/// A stateless hash of integer coordinates to [0, 1): textures and stars use it so a
/// pixel's colour depends only on where it is in the world.
#[inline]
pub fn hash2(x: i64, y: i64, salt: u64) -> f32 {
    let mut z = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ salt.wrapping_mul(0x1656_67B1_9E37_79F9);
    z = (z ^ (z >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 32;
    (z >> 40) as f32 / (1u64 << 24) as f32
}
