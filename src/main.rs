//! `dynkv`: parse flags, start logging, size the descriptor budget, run the
//! node until a signal.

use clap::Parser;
use dynkv::config::{Cli, Config};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    dynkv::logging::init();
    let mut config = match Config::resolve(Cli::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("dynkv: {e}");
            return ExitCode::from(2);
        }
    };
    // Before anything opens a file: clients must never take the
    // descriptors storage needs.
    match dynkv::fdlimit::apply(config.maxclients) {
        Ok(budget) => {
            config.maxclients = budget.maxclients;
            config.storage_cached_files = budget.storage_cached_files;
        }
        Err(e) => {
            eprintln!("dynkv: {e}");
            return ExitCode::from(2);
        }
    }
    // Before the node starts: it builds the client port's shared state, which
    // takes its starting proto-max-bulk-len from here.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dynkv: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dynkv::node::run(config, CancellationToken::new())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dynkv: {e:#}");
            ExitCode::FAILURE
        }
    }
}
