//! persona: the self-hosted backend of Persona. One binary, one SQLite file, an HTTP API and
//! admin subcommands. The module map:

/// The running application: shared state, startup and graceful shutdown.
pub mod app;
/// Tokens, password hashing, login throttling and the signed-in-user extractors.
pub mod auth;
/// Bounded in-memory caches (quick_cache), with a time to live where entries go stale.
pub mod cache;
/// The `persona` command line, one module per subcommand.
pub mod cli;
/// Typed, layered configuration (defaults → `persona.toml` → `PERSONA_*` variables).
pub mod config;
/// SQLite: a read pool, one writer, migrations; the one way to run a query.
pub mod db;
/// The shared vocabulary every feature speaks: time, ids, emails, crisis levels, cursors.
pub mod domain;
/// The one API error type and SPEC section 2's envelope.
pub mod error;
/// The product's features, one module each, each with its own router.
pub mod features;
/// Router assembly, middleware, extractors and the OpenAPI document.
pub mod http;
/// Mail and signed webhooks: the words (templates) and the delivery.
pub mod notify;
/// `secrets.toml`: the JWT and backup-encryption key rings.
pub mod secrets;
/// Logging setup.
pub mod telemetry;

/// The hasher of the maps read on every request (the auth caches, the metrics' labels).
/// std's SipHash spent about 1,500 instructions per `GET /auth/me` on the auth caches' three
/// keys alone (the access token is 200 bytes); foldhash is several times faster and still
/// seeded per process. Their keys are verified tokens, the ids those name and route
/// templates, none of which a client can choose to collide.
pub type FastHash = foldhash::fast::RandomState;

/// The glibc tunables persona runs with (see [`exec_with_tunables`]).
pub const GLIBC_TUNABLES: &str = "glibc.malloc.tcache_max=128";

/// Runs this binary again, in the same process, with [`GLIBC_TUNABLES`] in its environment,
/// unless `GLIBC_TUNABLES` is already set (to anything: set it, even empty, to run with
/// glibc's defaults). Under valgrind it must be set: there the exec would run the program
/// outside valgrind (the scripts that use valgrind set it).
///
/// glibc keeps up to seven freed chunks of every size up to 1 KiB in each thread's cache,
/// and `malloc_trim` cannot return them or the pages they sit on; after a burst of load the
/// two tokio workers held 1.6-1.8 MB each that way, a minute later and for good. Caching
/// only chunks up to 128 bytes halved what the server still held a minute after a load (the
/// private memory it gained: +2.8-4.0 MB → +1.4-1.6 MB) and cost 3 % more instructions per
/// `GET /auth/me` (BENCHMARKS.md). A tunable is read once, by the dynamic loader, from the
/// environment the process starts with; no call sets it later, hence the exec (2-4 ms; the
/// PID, arguments and open files stay). The binary is run by its path, not as
/// `/proc/self/exe`, so the process keeps its name (`ps`, `pkill -x persona`). No exec for a
/// binary with raised privileges (`AT_SECURE`: glibc ignores tunables there, and might drop
/// the variable, which would make this loop), nor when the path cannot be found; if the exec
/// fails, this returns and the server runs with glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn exec_with_tunables() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave the process.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "persona".into());
    let _failed = std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
        .exec();
}

/// Other allocators take no tunables from the environment.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn exec_with_tunables() {}

/// Makes glibc return big allocations to the system when they are freed.
///
/// Each argon2 hash allocates `auth.argon2_memory_kib` (19 MiB by default) at once. glibc
/// raises its mmap threshold after the first such block is freed, and from then on serves
/// them from per-thread arenas that it never trims: a login flood left the server at 2.5 GB
/// RSS. A fixed threshold turns that dynamic behaviour off, so every block over 1 MiB is
/// mapped for its use and unmapped after (a few hundred µs per 30 ms hash).
///
/// # Safety
///
/// Call it first thing in `main`, before any other thread exists: `mallopt` changes
/// allocator state that other threads may be using.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub unsafe fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; the caller guarantees no other
    // thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Hands the heap memory freed since the last call back to the system (`malloc_trim`).
///
/// glibc keeps freed memory in its arenas (one per thread that ever allocated, up to eight per
/// core) and returns only the top of each heap on its own: after a burst of load the server
/// stayed 25–35 MB above its idle size for good. Trimming walks the arenas and releases
/// their free pages; `App` calls it every 20 seconds from the blocking pool.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim_allocator() {
    // SAFETY: malloc_trim only releases free memory; it locks each arena while it works.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_allocator() {}

/// See the glibc version; other allocators need nothing.
///
/// # Safety
///
/// Always safe; `unsafe` only to match the glibc version.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
#[allow(unsafe_code)]
pub unsafe fn tune_allocator() {}
