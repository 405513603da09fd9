use std::process::ExitCode;

use clap::Parser;
use persona::cli::{self, Cli};

fn main() -> ExitCode {
    tune_allocator();
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

/// Makes glibc return big allocations to the system when they are freed.
///
/// Each argon2 hash allocates `auth.argon2_memory_kib` (19 MiB by default) at once. glibc
/// raises its mmap threshold after the first such block is freed, and from then on serves
/// them from per-thread arenas that it never trims: a login flood left the server at 2.5 GB
/// RSS. A fixed threshold turns that dynamic behaviour off, so every block over 1 MiB is
/// mapped for its use and unmapped after (a few hundred µs per 30 ms hash).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; it is called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
