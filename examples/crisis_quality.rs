//! `cargo run --release --example crisis_quality [-- --misses | --explain TEXT...]`
//!
//! Quality on the labelled set (SPEC 8): prints a confusion matrix per file and for the
//! whole set combined, and fails when, on any file or on the combined set, recall of `high`
//! detected at ≥ medium drops below 95 % or `none` messages detected at ≥ medium exceed
//! 5 %. Files: `tune`, `heldout`, `heldout2`, `heldout3`, `heldout4` and `train2`. The
//! learned model is trained on all six, so these figures are not a measure of
//! generalisation; `examples/crisis_train` prints the cross-validated ones. The misses of
//! `heldout4.jsonl` are never printed (it stays out of sight as a file that was written as
//! an untouched measure). `heldout5.jsonl` is the measure now: written by another author
//! who never saw the detector, never trained on, its lines and misses never printed. Then the cost per message (`CRISIS_LEXICON_DIR` measures an
//! admin's copy of the lexicon instead of the builtin one).

use std::collections::BTreeMap;
use std::path::PathBuf;

use persona::{domain::CrisisLevel, features::crisis::detector::Detector};

const LEVELS: [CrisisLevel; 4] = [
    CrisisLevel::None,
    CrisisLevel::Low,
    CrisisLevel::Medium,
    CrisisLevel::High,
];

#[derive(serde::Deserialize)]
struct Example {
    text: String,
    lang: String,
    level: CrisisLevel,
    tag: String,
}

fn data_dir() -> PathBuf {
    std::env::var_os("CRISIS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/crisis"))
}

fn load(name: &str, required: bool) -> Option<Vec<Example>> {
    let path = data_dir().join(name);
    if !required && !path.exists() {
        println!("\n{name}: not present, skipped");
        return None;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let examples = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect();
    Some(examples)
}

#[derive(Default)]
struct Matrix([[usize; 4]; 4]);

impl Matrix {
    fn add(&mut self, labelled: CrisisLevel, detected: CrisisLevel) {
        self.0[labelled as usize][detected as usize] += 1;
    }

    fn row(&self, level: CrisisLevel) -> usize {
        self.0[level as usize].iter().sum()
    }

    /// Share of `level` rows detected at medium or above.
    fn at_least_medium(&self, level: CrisisLevel) -> f64 {
        let row = self.0[level as usize];
        (row[2] + row[3]) as f64 / self.row(level).max(1) as f64
    }

    fn print(&self, title: &str) {
        println!("\n{title}: rows = labelled, columns = detected");
        println!(
            "{:>8} {:>6} {:>6} {:>6} {:>6}",
            "", "none", "low", "medium", "high"
        );
        for level in LEVELS {
            let row = self.0[level as usize];
            println!(
                "{:>8} {:>6} {:>6} {:>6} {:>6}",
                format!("{level:?}").to_lowercase(),
                row[0],
                row[1],
                row[2],
                row[3]
            );
        }
        let total: usize = LEVELS.iter().map(|&l| self.row(l)).sum();
        let exact: usize = (0..4).map(|i| self.0[i][i]).sum();
        println!(
            "exact {exact}/{total} ({:.1} %), high at >= medium {:.1} %, none at >= medium {:.1} %",
            100.0 * exact as f64 / total.max(1) as f64,
            100.0 * self.at_least_medium(CrisisLevel::High),
            100.0 * self.at_least_medium(CrisisLevel::None),
        );
    }
}

fn evaluate(detector: &Detector, examples: &[Example], show_misses: bool) -> Matrix {
    let mut matrix = Matrix::default();
    let mut misses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ex in examples {
        let detected = detector.assess(&ex.text).level;
        matrix.add(ex.level, detected);
        if show_misses && detected != ex.level {
            misses.entry(&ex.tag).or_default().push(format!(
                "[{}] {:?} -> {:?}: {}",
                ex.lang, ex.level, detected, ex.text
            ));
        }
    }
    for (tag, lines) in &misses {
        println!("\nmisses in tag {tag} ({}):", lines.len());
        for line in lines {
            println!("  {line}");
        }
    }
    matrix
}

/// Exits non-zero when the thresholds are missed. Not part of `cargo test` while the
/// detector misses them on held-out text (issue 11 stays open until it does).
fn main() -> std::process::ExitCode {
    let show_all = std::env::args().any(|a| a == "--misses");
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
    for (name, tuning) in [
        ("tune.jsonl", true),
        ("heldout.jsonl", true),
        ("heldout2.jsonl", true),
        ("heldout3.jsonl", true),
        ("heldout4.jsonl", false),
        ("train2.jsonl", true),
        ("heldout5.jsonl", false),
    ] {
        let Some(examples) = load(name, tuning) else {
            continue;
        };
        let show_misses = tuning && show_all;
        let matrix = evaluate(&detector, &examples, show_misses);
        texts.extend(examples.iter().map(|e| e.text.clone()));
        matrix.print(name);
        check(name, &matrix, &mut failures);
        for (i, row) in matrix.0.iter().enumerate() {
            for (j, n) in row.iter().enumerate() {
                overall.0[i][j] += n;
            }
        }
    }
    overall.print("combined");
    check("combined", &overall, &mut failures);
    timing(&detector, &texts);
    if failures.is_empty() {
        println!("\nall thresholds met");
        std::process::ExitCode::SUCCESS
    } else {
        println!("\nthresholds missed: {}", failures.join("; "));
        std::process::ExitCode::FAILURE
    }
}

/// Records in `failures` where `matrix` misses the SPEC thresholds.
fn check(name: &str, matrix: &Matrix, failures: &mut Vec<String>) {
    let recall = matrix.at_least_medium(CrisisLevel::High);
    let false_alarms = matrix.at_least_medium(CrisisLevel::None);
    if recall < 0.95 {
        failures.push(format!(
            "{name}: high recall {:.1} % < 95 %",
            100.0 * recall
        ));
    }
    if false_alarms > 0.05 {
        failures.push(format!(
            "{name}: none at >= medium {:.1} % > 5 %",
            100.0 * false_alarms
        ));
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
