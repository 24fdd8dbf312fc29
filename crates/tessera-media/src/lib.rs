//! tessera-media
