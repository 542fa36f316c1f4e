//! The tokio shell around the pure core: it implements the [`crate::kv::Kv`]
//! facade and runs background work.
