#![recursion_limit = "256"]
//! herald-load: a SIP load generator for presence servers (SUBSCRIBE / PUBLISH / NOTIFY),
//! and herald-echo, the plain UDP request/response server that measures the ceiling.
//!
//! Layout: `config` (what to run) → `engine` (threads, calls, timers) using `msg` (request
//! builders), `wire` (what we read from replies) and `net` (batched UDP); `stats` merges
//! counters and histograms into the report; `echo` is the ceiling server.

pub mod cli;
pub mod config;
pub mod echo;
pub mod engine;
pub mod msg;
pub mod net;
pub mod stats;
pub mod wire;
