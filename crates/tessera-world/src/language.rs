//! Captions, prompts and the prompt parser (in progress).
