//! # metalearn — MAML, FOMAML, iMAML and Reptile
//!
//! **Status: not yet implemented.** This crate will hold task distributions, the
//! meta-learning algorithms and the evaluation protocol of Finn et al. (2017).
//! Nothing here works yet.
