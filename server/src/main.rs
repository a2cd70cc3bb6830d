//! `herald`: parse flags, start one glommio executor per shard, stop on SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;

mod admin_cmd;
use server::cli::{Cli, Command};
use server::edge::{self, Settings};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.run.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let settings = Settings::from_args(&cli.run);
    match &cli.command {
        Some(Command::ShowConfig) => {
            println!("{settings:#?}");
            return ExitCode::SUCCESS;
        }
        Some(Command::Store(cmd)) => {
            return admin_cmd::run(cmd, &cli.run.data_dir, cli.run.map_size_max);
        }
        Some(Command::User(cmd)) => return admin_cmd::run_user(cmd, &cli.run),
        Some(Command::BenchCore { pairs, rounds }) => {
            // Under the allocator settings the server runs with.
            edge::memory::configure(cli.run.transparent_huge_pages, cli.run.heap_purge_delay_ms);
            println!(
                "{}",
                server::core_speed::report(*pairs as usize, *rounds as usize)
            );
            return ExitCode::SUCCESS;
        }
        None => {}
    }

    edge::memory::configure(cli.run.transparent_huge_pages, cli.run.heap_purge_delay_ms);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("herald: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    match edge::run(settings, cli.run.admin_addr(), stop) {
        Ok(final_stats) => {
            tracing::info!("final statistics:\n{final_stats}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}
