//! Offline trainer of the learned layer (`src/model.rs`):
//! `cargo run --release --features train --example train [-- --write]`.
//!
//! Reads only the four development files (tune, heldout, heldout2, heldout3; never
//! heldout4, the final measure). Messages whose word sets overlap (Jaccard > 0.4, same
//! language) are grouped so that near-duplicates never straddle folds. For each candidate
//! configuration it prints two honest estimates: nested 5-fold cross-validation (the
//! thresholds chosen on inner folds of the training part only) and leave-one-file-out (the
//! heldout3 row is the most honest: the lexicon was never tuned on that file). With
//! `--write` the chosen configuration is trained on all four files, its thresholds chosen
//! by 5-fold cross-validation over them, and saved to `config/crisis/model.bin`.

use std::collections::{BTreeSet, HashMap};

use persona::features::crisis::detector::train::{BIGRAMS, Combine, FeatureConfig, SIGNALS, WORDS};
use persona::{domain::CrisisLevel, features::crisis::detector::Detector};

mod lr;

use lr::{Config, Matrix, Row, matrix, predict, rates, thresholds, train};

const FILES: [&str; 4] = [
    "tune.jsonl",
    "heldout.jsonl",
    "heldout2.jsonl",
    "heldout3.jsonl",
];
const MODES: [Combine; 4] = [
    Combine::Max,
    Combine::GateKeepHigh,
    Combine::Guarded,
    Combine::MaxGuarded,
];
const K: usize = 5;
/// Thresholds are chosen to keep false alarms on `none` at or below this on inner folds,
/// a margin under the 5 % the SPEC allows.
pub(crate) const TARGET_FALSE_ALARMS: f64 = 0.035;

struct Example {
    text: String,
    lang: String,
    level: CrisisLevel,
    file: usize,
}

fn load() -> Result<Vec<Example>, Box<dyn std::error::Error>> {
    let dir = std::env::var("CRISIS_DATA_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/crisis").to_string());
    let mut out = Vec::new();
    for (file, name) in FILES.iter().enumerate() {
        for line in std::fs::read_to_string(format!("{dir}/{name}"))?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            let level = serde_json::from_value(v["level"].clone())?;
            out.push(Example {
                text: s("text"),
                lang: s("lang"),
                level,
                file,
            });
        }
    }
    Ok(out)
}

/// Fold of each example: near-duplicate groups (union-find over word-set Jaccard > 0.4)
/// dealt to the smallest fold, largest groups first, ties by a hash of the text.
fn folds(examples: &[Example], k: usize) -> Vec<usize> {
    let words: Vec<BTreeSet<String>> = examples
        .iter()
        .map(|e| {
            e.text
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    let mut parent: Vec<usize> = (0..examples.len()).collect();
    fn root(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..examples.len() {
        for j in i + 1..examples.len() {
            if examples[i].lang != examples[j].lang {
                continue;
            }
            let inter = words[i].intersection(&words[j]).count();
            let union = words[i].len() + words[j].len() - inter;
            if union > 0 && inter as f64 / union as f64 > 0.4 {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..examples.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let hash = |s: &str| {
        s.bytes()
            .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
    };
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(|g| (std::cmp::Reverse(g.len()), hash(&examples[g[0]].text)));
    let multi = groups.iter().filter(|g| g.len() > 1).count();
    eprintln!("{} groups ({multi} with near-duplicates)", groups.len());
    let mut sizes = vec![0usize; k];
    let mut fold = vec![0; examples.len()];
    for g in groups {
        let f = (0..k).min_by_key(|&f| sizes[f]).unwrap_or(0);
        sizes[f] += g.len();
        for i in g {
            fold[i] = f;
        }
    }
    fold
}

/// Out-of-fold probabilities over `rows` with `k` folds.
fn out_of_fold(rows: &[&Row], fold: &[usize], k: usize, cfg: &Config) -> Vec<(f32, f32)> {
    let mut probs = vec![(0.0, 0.0); rows.len()];
    for f in 0..k {
        let train_rows: Vec<&Row> = (0..rows.len())
            .filter(|&i| fold[i] != f)
            .map(|i| rows[i])
            .collect();
        let heads = train(&train_rows, cfg);
        for i in (0..rows.len()).filter(|&i| fold[i] == f) {
            probs[i] = predict(&heads, rows[i]);
        }
    }
    probs
}

/// Trains on `train_idx` (thresholds from its own inner folds) and returns, per mode, the
/// matrix on `test_idx`.
fn outer(
    rows: &[Row],
    fold: &[usize],
    train_idx: &[usize],
    test_idx: &[usize],
    cfg: &Config,
) -> Vec<Matrix> {
    let tr: Vec<&Row> = train_idx.iter().map(|&i| &rows[i]).collect();
    let inner_fold: Vec<usize> = train_idx.iter().map(|&i| fold[i] % (K - 1)).collect();
    let oof = out_of_fold(&tr, &inner_fold, K - 1, cfg);
    let heads = train(&tr, cfg);
    let te: Vec<&Row> = test_idx.iter().map(|&i| &rows[i]).collect();
    let probs: Vec<(f32, f32)> = te.iter().map(|r| predict(&heads, r)).collect();
    MODES
        .iter()
        .map(|&mode| matrix(&te, &probs, thresholds(&tr, &oof, mode), mode))
        .collect()
}

fn add(a: &mut Matrix, b: &Matrix) {
    for i in 0..4 {
        for j in 0..4 {
            a[i][j] += b[i][j];
        }
    }
}

fn show(m: &Matrix) -> String {
    let (r, f, e) = rates(m);
    format!(
        "high>=med {:5.1}%  none>=med {:4.1}%  exact {:4.1}%",
        100.0 * r,
        100.0 * f,
        100.0 * e
    )
}

fn rows_for(detector: &Detector, examples: &[Example], cfg: &Config) -> Vec<Row> {
    let mask = (1u32 << cfg.bits) - 1;
    examples
        .iter()
        .map(|e| {
            let (lexicon, verdicts, feats) = detector.features(&e.text, &cfg.features);
            let feats = feats.into_iter().map(|(h, v)| (h & mask, v)).collect();
            Row {
                feats,
                lexicon,
                verdicts,
                label: e.level,
            }
        })
        .collect()
}

fn evaluate(rows: &[Row], fold: &[usize], files: &[usize], cfg: &Config, verbose: bool) {
    let mut nested = vec![[[0; 4]; 4]; MODES.len()];
    // Nested folds use a fresh split: outer f is fold[i] == f; inner folds the rest.
    for f in 0..K {
        let (test, train_idx): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&i| fold[i] == f);
        for (acc, m) in nested
            .iter_mut()
            .zip(outer(rows, fold, &train_idx, &test, cfg))
        {
            add(acc, &m);
        }
    }
    let mut by_file = vec![vec![[[0; 4]; 4]; MODES.len()]; FILES.len()];
    for (file, per_mode) in by_file.iter_mut().enumerate() {
        let (test, train_idx): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&i| files[i] == file);
        *per_mode = outer(rows, fold, &train_idx, &test, cfg);
    }
    for (mi, mode) in MODES.iter().enumerate() {
        println!("  {mode:?}: nested 5-fold {}", show(&nested[mi]));
        println!("  {mode:?}: leave-heldout3-out {}", show(&by_file[3][mi]));
        if verbose {
            for (file, name) in FILES.iter().enumerate() {
                println!(
                    "    leave-{name}-out {}  {:?}",
                    show(&by_file[file][mi]),
                    by_file[file][mi]
                );
            }
            println!("    nested matrix {:?}", nested[mi]);
        }
    }
}

fn write(rows: &[Row], fold: &[usize], cfg: &Config, mode: Combine) -> std::io::Result<()> {
    let all: Vec<&Row> = rows.iter().collect();
    let oof = out_of_fold(&all, fold, K, cfg);
    let t = thresholds(&all, &oof, mode);
    println!(
        "thresholds on 5-fold out-of-fold: medium {:.2}, high {:.2}",
        t.0, t.1
    );
    println!("5-fold out-of-fold: {}", show(&matrix(&all, &oof, t, mode)));
    let heads = train(&all, cfg);
    let scale: Vec<f32> = heads
        .w
        .iter()
        .map(|w| w.iter().fold(1e-9f32, |a, x| a.max(x.abs())) / 32767.0)
        .collect();
    let mut out = b"PCM1".to_vec();
    let f = cfg.features;
    out.extend([cfg.bits, f.char_min, f.char_max, f.flags]);
    for x in [f.signal_weight, t.0, t.1] {
        out.extend(x.to_le_bytes());
    }
    out.extend([mode as u8, 0, 0, 0]);
    for x in [heads.b[0], heads.b[1], scale[0], scale[1]] {
        out.extend(x.to_le_bytes());
    }
    for j in 0..1usize << cfg.bits {
        for (w, s) in heads.w.iter().zip(&scale) {
            out.extend(((w[j] / s).round() as i16).to_le_bytes());
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/crisis/model.bin");
    std::fs::write(path, &out)?;
    println!("wrote {path} ({} bytes)", out.len());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let examples = load()?;
    let detector = Detector::builtin();
    let fold = folds(&examples, K);
    let files: Vec<usize> = examples.iter().map(|e| e.file).collect();
    let base = Config {
        features: FeatureConfig {
            char_min: 3,
            char_max: 5,
            flags: WORDS | BIGRAMS | SIGNALS,
            signal_weight: 1.0,
        },
        bits: 16,
        l2: 1e-4,
        epochs: 15,
    };
    let with = |f: &dyn Fn(&mut Config)| {
        let mut c = base;
        f(&mut c);
        c
    };
    let candidates = [
        ("words+bigrams+char3-5+signals", base),
        ("no signals", with(&|c| c.features.flags = WORDS | BIGRAMS)),
        (
            "signals weight 0.5",
            with(&|c| c.features.signal_weight = 0.5),
        ),
        ("no char n-grams", with(&|c| c.features.char_min = 0)),
        (
            "char2-4",
            with(&|c| (c.features.char_min, c.features.char_max) = (2, 4)),
        ),
        ("no bigrams", with(&|c| c.features.flags = WORDS | SIGNALS)),
        ("l2 1e-3", with(&|c| c.l2 = 1e-3)),
        ("l2 1e-5", with(&|c| c.l2 = 1e-5)),
        (
            "no signals l2 1e-5",
            with(&|c| (c.l2, c.features.flags) = (1e-5, WORDS | BIGRAMS)),
        ),
        ("17 bits", with(&|c| c.bits = 17)),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pick = args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .and_then(|n| n.parse::<usize>().ok());
    for (n, (name, cfg)) in candidates.iter().enumerate() {
        if pick.is_some_and(|p| p != n) {
            continue;
        }
        println!("[{n}] {name}");
        let rows = rows_for(&detector, &examples, cfg);
        evaluate(&rows, &fold, &files, cfg, pick.is_some());
    }
    if args.iter().any(|a| a == "--write") {
        let (name, cfg) = candidates[pick.unwrap_or(0)];
        let mode = match args.iter().find_map(|a| a.strip_prefix("--mode=")) {
            Some("max") => Combine::Max,
            Some("gate") => Combine::Gate,
            Some("keephigh") => Combine::GateKeepHigh,
            Some("maxguarded") => Combine::MaxGuarded,
            _ => Combine::Guarded,
        };
        println!(
            "training {name} ({mode:?}) on all {} messages",
            examples.len()
        );
        let rows = rows_for(&detector, &examples, &cfg);
        write(&rows, &fold, &cfg, mode)?;
    }
    Ok(())
}
