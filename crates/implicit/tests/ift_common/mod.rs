//! Shared by the `ift_*` property tests: the harness (random cases, worst agreement),
//! small helpers, finite differences of re-solving, and four problem families with accurate
//! forward solves behind one interface.

#![allow(dead_code, unused_imports)] // each test file uses a part

pub mod bad;
pub mod blocks;
pub mod families;
pub mod harness;

pub use families::*;
pub use harness::*;
