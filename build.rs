//! Three things the compiler cannot see for itself:
//! - `embed_migrations!` reads the `migrations/` directory at compile time, and cargo would not
//!   notice a new file there without being told.
//! - A release build lays out its machine code in the order `link/text-order.txt` gives: the
//!   functions that start and the everyday requests run come first and together, so the kernel
//!   maps a few megabytes of the binary instead of touching 64 KiB windows all over its 15 MB
//!   of code (see `scripts/text-order`, which writes the file, and BENCHMARKS.md). A name the
//!   linker does not find is skipped, so a stale list only lays out less well.
//! - A release binary is stripped of its symbols by the linker rather than by the profile's
//!   `strip`, which cargo hashes into every symbol name: the build `scripts/text-order` runs
//!   (`PERSONA_KEEP_SYMBOLS=1`) then names its functions exactly as the release build does.
use std::{env, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=link/text-order.txt");
    println!("cargo:rerun-if-env-changed=PERSONA_NO_TEXT_ORDER");
    println!("cargo:rerun-if-env-changed=PERSONA_KEEP_SYMBOLS");
    if var("PROFILE") != "release" {
        return;
    }
    if var("CARGO_CFG_TARGET_OS") == "linux" && env::var_os("PERSONA_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bin=persona=-Wl,--strip-all");
    }
    if let Some(order) = text_order() {
        println!("cargo:rustc-link-arg-bin=persona=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=persona=-Wl,--no-warn-symbol-ordering");
    }
}

fn var(name: &str) -> String {
    env::var(name).unwrap_or_default()
}

/// The order file's path, when this (release) build links with rust-lld: a build for
/// x86_64 Linux (where Rust links with its own lld by default since 1.90) whose flags do not
/// choose another linker. GNU ld does not know the option; `PERSONA_NO_TEXT_ORDER=1` turns it
/// off by hand.
fn text_order() -> Option<String> {
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = [
        "link-self-contained",
        "linker-features",
        "fuse-ld",
        "linker-flavor",
    ]
    .iter()
    .any(|flag| flags.contains(flag));
    let wanted = var("TARGET") == "x86_64-unknown-linux-gnu"
        && !other_linker
        && env::var_os("PERSONA_NO_TEXT_ORDER").is_none();
    let path = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/text-order.txt");
    (wanted && path.is_file()).then(|| path.display().to_string())
}
