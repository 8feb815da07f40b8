//! Shared by the `ift_*` tests: the harness (random cases, worst agreement), small helpers,
//! finite differences of re-solving, four column-vector problem families behind one
//! interface (`families`), families with a matrix solution and 2–3 parameter blocks
//! (`blocks`), and the problems of the error tests (`bad`).

#![allow(dead_code, unused_imports)] // each test file uses a part

pub mod bad;
pub mod blocks;
pub mod families;
pub mod harness;

pub use families::*;
pub use harness::*;
