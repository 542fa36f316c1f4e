//! On-disk replica store (fjall).
