//! What Unity's Package Manager sees of an npm registry, as pure functions: how it lists a scoped
//! registry (`search`), which fields of a version it reads (`packument`), and what a tarball holds
//! (`tarball`). The publisher checks a version after publishing it, and the ops CLI's `probe` checks
//! every package, with the same judgements; each brings its own HTTP.

pub mod packument;
pub mod search;
pub mod tarball;
