//! tessera-pipeline
