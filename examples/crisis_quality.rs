//! `cargo run --release --example crisis_quality [-- --misses | --explain TEXT...]`
//!
//! Quality on the labelled set (SPEC 8): prints a confusion matrix per file and for the
//! whole set combined, and fails when, on any file or on the combined set, recall of `high`
//! detected at ≥ medium drops below 95 % or `none` messages detected at ≥ medium exceed
//! 5 %, or a file held to its own bars misses them (`quality::OWN_BARS`): the same check as
//! the `cargo test` quality test, through `detector::quality`.
//! The learned model is trained on every file here but `heldout5.jsonl` and
//! `heldout6.jsonl`, on which its `>= medium` thresholds are chosen, and the files of
//! `OWN_BARS`, so these figures are not a measure of generalisation:
//! `examples/crisis_train -- --lofo` prints that (each new author's file left out of
//! training in turn), and `untouched/` holds the files read once per candidate.
//! `heldout4.jsonl`'s and `heldout8.jsonl`'s lines and misses are never printed. Then the
//! cost per message (`CRISIS_LEXICON_DIR` measures an admin's copy of the lexicon instead
//! of the builtin one).

use std::collections::BTreeMap;
use std::path::PathBuf;

use persona::features::crisis::detector::{
    Detector,
    quality::{self, Matrix},
};

fn data_dir() -> PathBuf {
    std::env::var_os("CRISIS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/crisis"))
}

/// The labelled files and whether their misses may be printed (`--misses`): never for the
/// untouched measure.
const FILES: [(&str, bool); 25] = [
    ("tune.jsonl", true),
    ("heldout.jsonl", true),
    ("heldout2.jsonl", true),
    ("heldout3.jsonl", true),
    ("heldout4.jsonl", false),
    ("train2.jsonl", true),
    ("train3.jsonl", true),
    ("train4.jsonl", true),
    ("train5.jsonl", true),
    ("heldout5.jsonl", true),
    ("heldout6.jsonl", true),
    ("heldout7.jsonl", true),
    ("heldout8.jsonl", false),
    ("train6.jsonl", true),
    ("train7.jsonl", true),
    ("train8.jsonl", true),
    ("train9.jsonl", true),
    ("ordinary_en.jsonl", true),
    ("ordinary_id.jsonl", true),
    ("train10.jsonl", true),
    ("train11.jsonl", true),
    ("train12.jsonl", true),
    ("ordinary_requests.jsonl", true),
    ("ordinary_requests2.jsonl", true),
    ("ordinary_requests3.jsonl", true),
];

/// Exits non-zero when the thresholds are missed on a file or on the whole set.
fn main() -> std::process::ExitCode {
    let show_misses = std::env::args().any(|a| a == "--misses");
    // CRISIS_LEXICON_DIR: measure an admin's copy of the lexicon (and its model.bin).
    let detector = match std::env::var_os("CRISIS_LEXICON_DIR") {
        Some(dir) => Detector::from_dir(std::path::Path::new(&dir))
            .unwrap_or_else(|e| panic!("cannot load the lexicon: {e}")),
        None => Detector::builtin(),
    };
    // `-- --explain TEXT...`: how each text is read, instead of the report.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--explain") {
        for text in &args[at + 1..] {
            print!("{text:?}: {}", detector.explain(text));
        }
        return std::process::ExitCode::SUCCESS;
    }
    let mut failures = Vec::new();
    let mut overall = Matrix::default();
    let mut texts = Vec::new();
    for (name, printable) in FILES {
        let path = data_dir().join(name);
        if !path.exists() {
            println!("\n{name}: not present, skipped");
            continue;
        }
        let examples = quality::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let (matrix, misread) = quality::evaluate(&detector, &examples);
        if show_misses && printable {
            let mut by_tag: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (ex, detected) in misread {
                by_tag.entry(&ex.tag).or_default().push(format!(
                    "[{}] {:?} -> {detected:?}: {}",
                    ex.lang, ex.level, ex.text
                ));
            }
            for (tag, lines) in &by_tag {
                println!("\nmisses in tag {tag} ({}):", lines.len());
                for line in lines {
                    println!("  {line}");
                }
            }
        }
        texts.extend(examples.iter().map(|e| e.text.clone()));
        println!("\n{}", matrix.render(name));
        failures.extend(matrix.failures(name));
        overall.merge(&matrix);
    }
    println!("\n{}", overall.render("combined"));
    failures.extend(overall.failures("combined"));
    timing(&detector, &texts);
    if failures.is_empty() {
        println!("\nall thresholds met");
        std::process::ExitCode::SUCCESS
    } else {
        println!("\nthresholds missed: {}", failures.join("; "));
        std::process::ExitCode::FAILURE
    }
}

/// Prints the mean µs per message over the labelled set and for one typical 200-character
/// message (the bench's figure, SPEC 11: ≤ 20 µs): the fastest of many short runs, so that
/// other work on the machine does not count.
fn timing(detector: &Detector, texts: &[String]) {
    use std::hint::black_box;
    use std::time::Instant;
    let fastest = |runs: usize, run: &dyn Fn() -> usize| {
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let n = run();
                start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mean = fastest(10, &|| {
        for text in texts {
            black_box(detector.assess(black_box(text)));
        }
        texts.len()
    });
    let typical = "honestly i don't know why i keep trying. work is a mess, my family \
                   keeps fighting, and tonight i just feel like everyone would be better \
                   off without me. i'm so tired of all of it";
    let typical_us = fastest(50, &|| {
        for _ in 0..1000 {
            black_box(detector.assess(black_box(typical)));
        }
        1000
    });
    println!("\ncost: {mean:.2} µs per message (mean over the set), {typical_us:.2} µs typical");
}
