use std::process::ExitCode;

use clap::Parser;
use persona::cli::{self, Cli};

fn main() -> ExitCode {
    // Before anything else: on success the process starts over with the tunables set.
    persona::exec_with_tunables();
    // SAFETY: first thing in main, before the runtime or any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        persona::tune_allocator()
    };
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
