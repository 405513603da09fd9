//! What the per-request auth check costs, measured in process (no HTTP, no load tool):
//! JWT verification alone, the whole `AuthUser` extractor with a warm session cache, one
//! trivial `Db::read` for comparison, and one argon2id hash (the unit of login cost). Run: `cargo run --release --example auth_check`.

use std::time::Instant;

use axum::{extract::FromRequestParts, http::Request};
use persona::{
    app::App,
    auth::{AuthUser, Role, password::Passwords},
    config::Config,
    domain::{Email, Secret},
    features::accounts::{self, Password},
};

const N: u32 = 200_000;

fn main() -> anyhow::Result<()> {
    // The allocator setting `persona` itself uses, so the hash time matches.
    // SAFETY: first thing in main, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        persona::tune_allocator()
    };
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_path_buf();
    config.auth.argon2_memory_kib = 1024;
    config.auth.argon2_iterations = 1;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let app = App::init(config, persona::features::all())?;
        let user = accounts::create_user(
            &app,
            Email::parse("bench@example.com").map_err(anyhow::Error::msg)?,
            Password::parse(Secret::new("password123")).map_err(anyhow::Error::msg)?,
            None,
            Role::User,
        )
        .await?;
        let token = accounts::start_session(&app, user, None)
            .await?
            .access_token;

        let jwt = app.auth.jwt();
        let start = Instant::now();
        for _ in 0..N {
            std::hint::black_box(jwt.verify(&token)?);
        }
        report("JWT verify (HS256)", start, N);

        let request = Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(())?;
        let (mut parts, ()) = request.into_parts();
        let start = Instant::now();
        for _ in 0..N {
            std::hint::black_box(AuthUser::from_request_parts(&mut parts, &app).await?);
        }
        report("AuthUser extractor, warm session cache", start, N);

        let reads = N / 10;
        let start = Instant::now();
        for _ in 0..reads {
            let one: i64 = app
                .db
                .read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get(0))?))
                .await?;
            std::hint::black_box(one);
        }
        report("Db::read of SELECT 1 (blocking-pool hop)", start, reads);

        // One argon2id hash at the configured defaults (m=19456 KiB, t=2, p=1): the login
        // limit is cores ÷ this time.
        let passwords = Passwords::new(&Config::default().auth)?;
        let hashes = 20;
        let start = Instant::now();
        for _ in 0..hashes {
            std::hint::black_box(passwords.hash("password123".into()).await?);
        }
        report("argon2id hash, default parameters", start, hashes);
        anyhow::Ok(())
    })
}

fn report(what: &str, start: Instant, n: u32) {
    let per = start.elapsed() / n;
    println!("{what:<45} {:>8.2} µs/op", per.as_nanos() as f64 / 1000.0);
}
