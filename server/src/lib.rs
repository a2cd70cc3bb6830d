//! herald server library: the sans-IO core (`core`), the glommio edge (`edge`) and the
//! command line (`cli`).

pub mod cli;
pub mod core;
pub mod core_speed;
pub mod edge;
pub mod fuzz_checks;
pub mod persist;
pub mod xcap_front;
