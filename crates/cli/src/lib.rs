//! The `edgekv` command's pieces, apart from its argument parsing (which is `main.rs`, the only
//! place clap appears): settings layered from a file, the environment and flags, and their
//! mapping onto the node library's `RegionConfig`; the consistency lab's runner and its HTTP
//! client; `edgekv sim`, which runs the lab's scenarios on the real code under virtual time;
//! `edgekv chaos`; and what a process needs around its regions (logs, signals, the container
//! probe).

pub mod chaos;
pub mod config;
pub mod dash;
pub mod lab;
pub mod membership;
pub mod process;
pub mod settings;
pub mod sim;
pub mod supervise;
