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
/// The one API error type and SPEC section 2's envelope.
pub mod error;
/// The product's features, one module each, each with its own router.
pub mod features;
/// Router assembly, middleware, extractors and the OpenAPI document.
pub mod http;
/// Outgoing mail (SMTP), when configured.
pub mod mail;
/// `secrets.toml`: the JWT and backup-encryption key rings.
pub mod secrets;
/// Logging setup.
pub mod telemetry;
