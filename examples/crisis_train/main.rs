//! Offline trainer of the learned layer (`src/features/crisis/detector/model.rs`):
//! `cargo run --release --features crisis-train --example crisis_train [-- --config=N]
//! [--lofo] [--write [--mode=support|supportveto|gate|guarded|keephigh|max|maxguarded]]`.
//!
//! Reads the labelled training files (`FILES`: every file of `tests/data/crisis/` but the
//! two calibration files and the files held to their own bars, `quality::OWN_BARS`;
//! `CRISIS_TRAIN=a.jsonl,b.jsonl` names others). Nothing under `untouched/` is ever read
//! here.
//!
//! - `--lofo` (the measure to trust): the shipping procedure below, repeated with each file
//!   by a new author (`NEW_AUTHORS`) left out of the training files and measured — how the
//!   shipped model does on the text of a person it never read. Prints each file, the best
//!   recall any thresholds could reach on it at <= 5 % false alarms, and the pooled matrix.
//!   `CRISIS_BY_FILE=1` chooses the thresholds on leave-one-file-out probabilities instead.
//! - Without flags: for each candidate configuration (the first is the shipped one), nested
//!   5-fold cross-validation and leave-one-file-out over heldout3, heldout4 and train2, per
//!   combine mode. Messages whose word sets overlap (Jaccard > 0.4, same language) are
//!   grouped so that near-duplicates never straddle folds. `CRISIS_FA` sets the false-alarm
//!   target of the threshold choice (default 0.05); `CRISIS_MISSES=1` prints the train2
//!   lines missed in cross-validation.
//! - `--write`: the configuration is trained on all training files and saved to
//!   `config/crisis/model.bin`; its thresholds come from 5-fold out-of-fold probabilities,
//!   then its `>= medium` ones are chosen anew on `heldout5.jsonl` and `heldout6.jsonl`,
//!   which it never trains on (false alarms there within `CRISIS_CAL_FA`, default 4 %).
//!
//! `CRISIS_HIDDEN=N` (with `--lofo` only) adds a hidden layer of N ReLU units over the same
//! features, feeding both heads (`CRISIS_DEEP_LR` is its learning rate, default 0.05): a
//! different model family on the same features. It did not read new authors better (data
//! README, "A hidden layer"), so `--write` refuses it.
//!
//! `CRISIS_NONE_WEIGHT` and `CRISIS_HIGH_WEIGHT` set the sample weights of `none` and `high`
//! messages (default 1.5 for `none`, 1 for `high`).

use std::collections::{BTreeSet, HashMap};

use persona::features::crisis::detector::train::{
    BIGRAMS, CONCEPTS, Combine, FeatureConfig, GROUPS, SIGNALS, SKIPS, Thresholds, WORDS, combine,
    model_level,
};
use persona::{
    domain::CrisisLevel,
    features::crisis::detector::{Detector, quality},
};

mod lr;

use lr::{
    Config, Matrix, Row, calibrate_medium, matrix, oracle_recall, predict, rates, thresholds, train,
};

const FILES: [&str; 20] = [
    "tune.jsonl",
    "heldout.jsonl",
    "heldout2.jsonl",
    "heldout3.jsonl",
    "heldout4.jsonl",
    "train2.jsonl",
    "train3.jsonl",
    "train4.jsonl",
    "train5.jsonl",
    "heldout7.jsonl",
    "heldout8.jsonl",
    "train6.jsonl",
    "train7.jsonl",
    "train9.jsonl",
    "ordinary_en.jsonl",
    "ordinary_id.jsonl",
    "train8.jsonl",
    "train10.jsonl",
    "train11.jsonl",
    // Short everyday requests to an assistant (the commonest messages it gets). The other
    // two everyday-chat files, `ordinary_requests2.jsonl` and `ordinary_requests3.jsonl`,
    // are never trained on: they measure them (training on the third made the model more
    // sensitive everywhere; see the data README).
    "ordinary_requests.jsonl",
];
/// The files by authors whose text the lexicon was never tuned on, each left out in turn by
/// `--lofo` (`CRISIS_LOFO` names others).
const NEW_AUTHORS: [&str; 11] = [
    "train4.jsonl",
    "train5.jsonl",
    "heldout7.jsonl",
    "heldout8.jsonl",
    "train6.jsonl",
    "train7.jsonl",
    "train9.jsonl",
    "train8.jsonl",
    "train11.jsonl",
    "train10.jsonl",
    // Not among FILES: measured by models trained on all of them (a model trained with it
    // lost recall on most new authors' files at the same calibration; see the data README).
    "train12.jsonl",
];
/// Never trained on: the shipped thresholds are chosen on them (`--write`;
/// `CRISIS_CALIBRATE=a.jsonl,b.jsonl` names others). Written by authors who never saw the
/// detector, each measured on before it took this role.
const CALIBRATION: &str = "heldout5.jsonl,heldout6.jsonl";

/// The calibration files (`CRISIS_CALIBRATE`, comma-separated).
fn calibration_files() -> Vec<String> {
    std::env::var("CRISIS_CALIBRATE")
        .unwrap_or_else(|_| CALIBRATION.to_owned())
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// False alarms allowed on the calibration files (`CRISIS_CAL_FA`, default 4 %: a margin
/// under the 5 % target for text the thresholds were not chosen on). Measured with
/// `--lofo`, 5 % buys about 1.4 points of recall on new authors for 1.3 points more false
/// alarms, but its lower `>= medium` threshold (0.28) read two-word requests ("be brief",
/// "what is in this picture?") as medium.
fn calibration_fa() -> f64 {
    env_number("CRISIS_CAL_FA").unwrap_or(0.04)
}
/// The files the lexicon was never tuned on: their leave-one-file-out rows are the honest
/// measure of generalisation (the lexicon was tuned on the first three).
const HONEST: [usize; 3] = [3, 4, 5];
const MODES: [Combine; 3] = [Combine::Gate, Combine::Support, Combine::SupportVeto];
const K: usize = 5;

struct Example {
    text: String,
    lang: String,
    level: CrisisLevel,
    file: usize,
}

fn load(files: &[&str]) -> Result<Vec<Example>, Box<dyn std::error::Error>> {
    let dir = std::env::var("CRISIS_DATA_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/crisis").to_string());
    let mut out = Vec::new();
    for (file, name) in files.iter().enumerate() {
        for e in quality::load(&std::path::Path::new(&dir).join(name))? {
            out.push(Example {
                text: e.text,
                lang: e.lang,
                level: e.level,
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
    outer_split(rows, fold, train_idx, test_idx, cfg)
        .into_iter()
        .map(|(a, b, _)| {
            let mut m = a;
            add(&mut m, &b);
            m
        })
        .collect()
}

/// As `outer`, with the test matrix split by language: `(en, id)` per mode.
fn outer_split(
    rows: &[Row],
    fold: &[usize],
    train_idx: &[usize],
    test_idx: &[usize],
    cfg: &Config,
) -> Vec<(Matrix, Matrix, f64)> {
    let tr: Vec<&Row> = train_idx.iter().map(|&i| &rows[i]).collect();
    let inner_fold: Vec<usize> = train_idx.iter().map(|&i| fold[i] % (K - 1)).collect();
    let oof = out_of_fold(&tr, &inner_fold, K - 1, cfg);
    let heads = train(&tr, cfg);
    let te: [Vec<&Row>; 2] = [false, true].map(|id| {
        test_idx
            .iter()
            .map(|&i| &rows[i])
            .filter(|r| r.indonesian == id)
            .collect()
    });
    let probs: [Vec<(f32, f32)>; 2] =
        [0, 1].map(|l| te[l].iter().map(|r| predict(&heads, r)).collect());
    if std::env::var_os("CRISIS_MISSES").is_some() {
        let t = thresholds(&tr, &oof, Combine::Gate, cfg.target_fa);
        for (l, rows) in te.iter().enumerate() {
            for (r, p) in rows.iter().zip(&probs[l]) {
                if r.text.is_empty() {
                    continue;
                }
                let learned = model_level(*p, t, r.lexicon, r.verdicts);
                let level = combine(Combine::Gate, r.lexicon, r.verdicts, learned);
                let wrong = (r.label == CrisisLevel::High && level < CrisisLevel::Medium)
                    || (r.label == CrisisLevel::None && level >= CrisisLevel::Medium);
                if wrong {
                    println!(
                        "MISS {:?}->{level:?} ({:.2} {:.2}) {}",
                        r.label, p.0, p.1, r.text
                    );
                }
            }
        }
    }
    MODES
        .iter()
        .map(|&mode| {
            let t = thresholds(&tr, &oof, mode, cfg.target_fa);
            let all: Vec<&Row> = te.concat();
            let all_probs: Vec<(f32, f32)> = probs.concat();
            (
                matrix(&te[0], &probs[0], t, mode),
                matrix(&te[1], &probs[1], t, mode),
                oracle_recall(&all, &all_probs, mode, 0.05),
            )
        })
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
                indonesian: e.lang == "id",
                // Misses are printed only for the file written with the trainer.
                text: if e.file == 5 {
                    e.text.clone()
                } else {
                    String::new()
                },
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
    let mut by_file = vec![Vec::new(); FILES.len()];
    for (file, per_mode) in by_file.iter_mut().enumerate() {
        if !verbose && !HONEST.contains(&file) {
            continue;
        }
        let (test, train_idx): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&i| files[i] == file);
        *per_mode = outer_split(rows, fold, &train_idx, &test, cfg);
    }
    for (mi, mode) in MODES.iter().enumerate() {
        println!("  {mode:?}: nested 5-fold {}", show(&nested[mi]));
        let mut honest = [[0; 4]; 4];
        let mut oracle = Vec::new();
        for &file in &HONEST {
            let (en, id, o) = &by_file[file][mi];
            add(&mut honest, en);
            add(&mut honest, id);
            oracle.push(format!("{:.1}", 100.0 * o));
        }
        println!(
            "  {mode:?}: leave-one-out over heldout3, heldout4, train2 {} (best recall at <= 5 % false alarms: {})",
            show(&honest),
            oracle.join(" / ")
        );
        for (file, name) in FILES.iter().enumerate() {
            if by_file[file].is_empty() {
                continue;
            }
            let (en, id, _) = &by_file[file][mi];
            let mut both = *en;
            add(&mut both, id);
            println!("    leave-{name}-out {}", show(&both));
            println!("      en {}", show(en));
            println!("      id {}", show(id));
            if verbose {
                println!("      {both:?}");
            }
        }
        if verbose {
            println!("    nested matrix {:?}", nested[mi]);
        }
    }
}

fn write(
    rows: &[Row],
    fold: &[usize],
    cfg: &Config,
    mode: Combine,
    calibration: &[Row],
    dev: &[Row],
) -> std::io::Result<()> {
    let all: Vec<&Row> = rows.iter().collect();
    let oof = out_of_fold(&all, fold, K, cfg);
    let mut t = thresholds(&all, &oof, mode, cfg.target_fa);
    println!(
        "thresholds on 5-fold out-of-fold: medium {:.2}, high {:.2}; with the lexicon's support {:.2}, {:.2}",
        t[0], t[1], t[2], t[3]
    );
    println!("5-fold out-of-fold: {}", show(&matrix(&all, &oof, t, mode)));
    let heads = train(&all, cfg);
    if heads.deep.is_some() {
        // Measured with `--lofo` only (see the data README): `model.bin` has no room for it.
        return Err(std::io::Error::other(
            "CRISIS_HIDDEN is for --lofo; the model file holds the linear heads only",
        ));
    }
    if !calibration.is_empty() {
        // Thresholds from text the model never saw, written by another author: the
        // training files are dense with hard negatives, so thresholds chosen on them
        // overstate false alarms on ordinary text and give away recall.
        let cal: Vec<&Row> = calibration.iter().collect();
        let probs: Vec<(f32, f32)> = cal.iter().map(|r| predict(&heads, r)).collect();
        println!(
            "calibration file with the cross-validated thresholds: {}",
            show(&matrix(&cal, &probs, t, mode))
        );
        t = calibrate_medium(&cal, &probs, mode, calibration_fa(), t);
        println!(
            "thresholds on the calibration file: medium {:.2}, high {:.2}; with the lexicon's support {:.2}, {:.2}; negated {:.2}",
            t[0], t[1], t[2], t[3], t[4]
        );
        println!("calibration file: {}", show(&matrix(&cal, &probs, t, mode)));
        println!(
            "5-fold out-of-fold with them: {}",
            show(&matrix(&all, &oof, t, mode))
        );
    }
    if !dev.is_empty() {
        let dev: Vec<&Row> = dev.iter().collect();
        let probs: Vec<(f32, f32)> = dev.iter().map(|r| predict(&heads, r)).collect();
        let m = matrix(&dev, &probs, t, mode);
        println!("development file: {} {m:?}", show(&m));
    }
    let scale: Vec<f32> = heads
        .w
        .iter()
        .map(|w| w.iter().fold(1e-9f32, |a, x| a.max(x.abs())) / 32767.0)
        .collect();
    let mut out = b"PCM2".to_vec();
    let f = cfg.features;
    out.extend([cfg.bits, f.char_min, f.char_max, f.flags]);
    for x in [f.signal_weight, t[0], t[1]] {
        out.extend(x.to_le_bytes());
    }
    let concept_weight = (f.concept_weight * 100.0).round().clamp(0.0, 255.0) as u8;
    let hundredths = |x: f32| (x * 100.0).round().clamp(1.0, 255.0) as u8;
    out.extend([
        mode as u8,
        concept_weight,
        hundredths(t[2]),
        hundredths(t[3]),
    ]);
    for x in [heads.b[0], heads.b[1], scale[0], scale[1], t[4]] {
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

/// A number from the environment (`CRISIS_FA`, `CRISIS_NONE_WEIGHT`, `CRISIS_HIGH_WEIGHT`,
/// `CRISIS_HIDDEN`, `CRISIS_DEEP_LR`, `CRISIS_CAL_FA`).
fn env_number<T: std::str::FromStr>(var: &str) -> Option<T> {
    std::env::var(var).ok().and_then(|v| v.parse().ok())
}

/// Comma-separated file names from `var`, or `default`.
fn file_list(var: &str, default: &[&str]) -> Vec<String> {
    match std::env::var(var) {
        Ok(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
        Err(_) => default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `--lofo`: the shipping procedure (train, thresholds from 5-fold out-of-fold, the
/// `>= medium` ones recalibrated on the calibration files) repeated with each file of
/// `CRISIS_LOFO` left out of the training files (`CRISIS_TRAIN`) and measured: how the
/// shipped model would do on a new author's text. Prints each file and the pooled matrix.
fn lofo(
    detector: &Detector,
    cfg: &Config,
    mode: Combine,
) -> Result<(), Box<dyn std::error::Error>> {
    let train_names = file_list("CRISIS_TRAIN", &FILES);
    let test_names = file_list("CRISIS_LOFO", &NEW_AUTHORS);
    let cal_names = calibration_files();
    let cal_refs: Vec<&str> = cal_names.iter().map(String::as_str).collect();
    let calibration = rows_for(detector, &load(&cal_refs)?, cfg);
    let cal: Vec<&Row> = calibration.iter().collect();
    // CRISIS_BY_FILE: each file its own fold, so that the thresholds are chosen on
    // probabilities from models that never saw the file's author.
    let by_file = std::env::var_os("CRISIS_BY_FILE").is_some();
    let misses = std::env::var_os("CRISIS_MISSES").is_some();
    let mut pooled = [[0; 4]; 4];
    for test in &test_names {
        let names: Vec<&str> = train_names
            .iter()
            .map(String::as_str)
            .filter(|n| n != test)
            .collect();
        let examples = load(&names)?;
        let rows = rows_for(detector, &examples, cfg);
        let all: Vec<&Row> = rows.iter().collect();
        let (fold, k) = if by_file {
            (examples.iter().map(|e| e.file).collect(), names.len())
        } else {
            (folds(&examples, K), K)
        };
        let oof = out_of_fold(&all, &fold, k, cfg);
        let mut t = thresholds(&all, &oof, mode, cfg.target_fa);
        let heads = train(&all, cfg);
        if !by_file {
            let probs: Vec<(f32, f32)> = cal.iter().map(|r| predict(&heads, r)).collect();
            t = calibrate_medium(&cal, &probs, mode, calibration_fa(), t);
        }
        let test_examples = load(&[test.as_str()])?;
        let mut test_rows = rows_for(detector, &test_examples, cfg);
        if misses {
            for (row, example) in test_rows.iter_mut().zip(&test_examples) {
                row.text.clone_from(&example.text);
            }
        }
        let te: Vec<&Row> = test_rows.iter().collect();
        let probs: Vec<(f32, f32)> = te.iter().map(|r| predict(&heads, r)).collect();
        let m = matrix(&te, &probs, t, mode);
        add(&mut pooled, &m);
        if misses {
            print_misses(test, &te, &probs, t, mode);
        }
        println!(
            "  without {test} ({} training messages; thresholds {:.2} {:.2} {:.2} {:.2} {:.2}): {} (best at <= 5 %: {:.1})",
            rows.len(),
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            show(&m),
            100.0 * oracle_recall(&te, &probs, mode, 0.05)
        );
    }
    println!("  pooled {}", show(&pooled));
    Ok(())
}

/// `CRISIS_MISSES=1` with `--lofo`: the left-out file's `high` lines read below medium and
/// `none` lines read at medium or above, with the model's two probabilities and the
/// lexicon's level (never a file under `untouched/`: `--lofo` reads none).
fn print_misses(file: &str, rows: &[&Row], probs: &[(f32, f32)], t: Thresholds, mode: Combine) {
    for (r, &p) in rows.iter().zip(probs) {
        let level = lr::level(r, p, t, mode);
        let wrong = (r.label == CrisisLevel::High && level < CrisisLevel::Medium)
            || (r.label == CrisisLevel::None && level >= CrisisLevel::Medium);
        if wrong {
            println!(
                "MISS {file} {:?}->{level:?} (p {:.2} {:.2}, lexicon {:?}) {}",
                r.label, p.0, p.1, r.lexicon, r.text
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let detector = Detector::builtin();
    let base = Config {
        features: FeatureConfig {
            char_min: 3,
            char_max: 5,
            flags: WORDS | BIGRAMS | SIGNALS,
            signal_weight: 1.0,
            concept_weight: 0.0,
        },
        bits: 16,
        l2: 1e-4,
        epochs: 15,
        target_fa: env_number("CRISIS_FA").unwrap_or(0.05),
        high_weight: env_number("CRISIS_HIGH_WEIGHT").unwrap_or(1.0),
        // Ordinary chat weighs half again as much: most of what a deployed detector reads,
        // and the shipped model's false alarms on new authors' plain lines (`--lofo`).
        none_weight: env_number("CRISIS_NONE_WEIGHT").unwrap_or(1.5),
        hidden: env_number("CRISIS_HIDDEN").unwrap_or(0),
        deep_lr: env_number("CRISIS_DEEP_LR").unwrap_or(0.05),
    };
    let with = |f: &dyn Fn(&mut Config)| {
        let mut c = base;
        f(&mut c);
        c
    };
    let grouped = |w: f32| {
        with(&|c: &mut Config| {
            c.features.flags = WORDS | BIGRAMS | CONCEPTS | GROUPS;
            c.features.concept_weight = w;
        })
    };
    // The first is the shipped configuration (`--write` without `--config`).
    let candidates = [
        ("groups, concepts 0.3, char 2-5 (shipped since heldout7)", {
            let mut c = grouped(0.3);
            c.features.char_min = 2;
            c
        }),
        ("groups, concepts 0.3, char 4-5 (shipped until heldout7)", {
            let mut c = grouped(0.3);
            c.features.char_min = 4;
            c
        }),
        ("words+bigrams+char3-5+signals (before train2)", base),
        ("groups, concepts 0.3", grouped(0.3)),
        ("groups, concepts 0.3, signals 0.1", {
            let mut c = grouped(0.3);
            c.features.flags |= SIGNALS;
            c.features.signal_weight = 0.1;
            c
        }),
        ("groups, concepts 0.3, high x2", {
            let mut c = grouped(0.3);
            c.high_weight = 2.0;
            c
        }),
        ("groups, concepts 0.3, 30 epochs", {
            let mut c = grouped(0.3);
            c.epochs = 30;
            c
        }),
        ("groups, concepts 0.3, l2 3e-5", {
            let mut c = grouped(0.3);
            c.l2 = 3e-5;
            c
        }),
        ("groups, concepts 0.3, l2 3e-4", {
            let mut c = grouped(0.3);
            c.l2 = 3e-4;
            c
        }),
        ("groups, concepts 0.3, 17 bits", {
            let mut c = grouped(0.3);
            c.bits = 17;
            c
        }),
        ("no signals", with(&|c| c.features.flags = WORDS | BIGRAMS)),
        ("groups, concepts 0.3, skips", {
            let mut c = grouped(0.3);
            c.features.flags |= SKIPS;
            c
        }),
        ("groups, concepts 0.3, skips, char 4-5", {
            let mut c = grouped(0.3);
            c.features.flags |= SKIPS;
            c.features.char_min = 4;
            c
        }),
        ("groups, concepts 0.3, char 3-4", {
            let mut c = grouped(0.3);
            c.features.char_max = 4;
            c
        }),
        ("groups, concepts 0.3, char 2-5, high x2", {
            let mut c = grouped(0.3);
            c.features.char_min = 2;
            c.high_weight = 2.0;
            c
        }),
        ("groups, concepts 0.3, no chars", {
            let mut c = grouped(0.3);
            c.features.char_min = 0;
            c
        }),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pick = args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .and_then(|n| n.parse::<usize>().ok());
    if args.iter().any(|a| a == "--lofo") {
        let n = pick.unwrap_or(0);
        let (name, cfg) = candidates[n];
        let mode = if args.iter().any(|a| a == "--mode=supportveto") {
            Combine::SupportVeto
        } else {
            Combine::Support
        };
        println!(
            "[{n}] {name}, none weight {}, high weight {}, {mode:?}",
            cfg.none_weight, cfg.high_weight
        );
        return lofo(&detector, &cfg, mode);
    }
    // Loaded (and grouped into folds, quadratic in the messages) only here: `--lofo`
    // loads its own training sets.
    let train_names = file_list("CRISIS_TRAIN", &FILES);
    let train_refs: Vec<&str> = train_names.iter().map(String::as_str).collect();
    let examples = load(&train_refs)?;
    let fold = folds(&examples, K);
    let files: Vec<usize> = examples.iter().map(|e| e.file).collect();
    for (n, (name, cfg)) in candidates.iter().enumerate() {
        if pick.is_some_and(|p| p != n) {
            continue;
        }
        println!("[{n}] {name}");
        // CRISIS_SKIP_EVAL: only `--write` (to compare configurations on CRISIS_DEV fast).
        if std::env::var_os("CRISIS_SKIP_EVAL").is_none() {
            let rows = rows_for(&detector, &examples, cfg);
            evaluate(&rows, &fold, &files, cfg, pick.is_some());
        }
    }
    if args.iter().any(|a| a == "--write") {
        let (name, cfg) = candidates[pick.unwrap_or(0)];
        let mode = match args.iter().find_map(|a| a.strip_prefix("--mode=")) {
            Some("max") => Combine::Max,
            Some("gate") => Combine::Gate,
            Some("keephigh") => Combine::GateKeepHigh,
            Some("maxguarded") => Combine::MaxGuarded,
            Some("guarded") => Combine::Guarded,
            Some("supportveto") => Combine::SupportVeto,
            _ => Combine::Support,
        };
        println!(
            "training {name} ({mode:?}) on all {} messages",
            examples.len()
        );
        let rows = rows_for(&detector, &examples, &cfg);
        let files = calibration_files();
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        let calibration = rows_for(&detector, &load(&names)?, &cfg);
        // A development file (`CRISIS_DEV`): an already spent measure whose matrix is
        // printed with the final thresholds, to compare training choices.
        let dev = match std::env::var("CRISIS_DEV") {
            Ok(name) => rows_for(&detector, &load(&[name.as_str()])?, &cfg),
            Err(_) => Vec::new(),
        };
        write(&rows, &fold, &cfg, mode, &calibration, &dev)?;
    }
    Ok(())
}
