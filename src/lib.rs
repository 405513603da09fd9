//! persona: the self-hosted backend of Persona. One binary, one SQLite file, an HTTP API and
//! admin subcommands. The module map:

/// The running application: shared state, startup and graceful shutdown.
pub mod app;
/// Tokens, password hashing, login throttling and the signed-in-user extractors.
pub mod auth;
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
