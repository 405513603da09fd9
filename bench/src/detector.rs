//! The crisis detector's cost per message (SPEC 11: ≤ 20 µs for a typical message), measured
//! in process over the project's labelled messages (`tests/data/crisis/*.jsonl`), beside a
//! baseline in the same run: lower-casing and splitting the same text into words, the least
//! any word-level reading must do.

use std::{hint::black_box, path::Path, time::Instant};

use anyhow::Context;
use persona::features::crisis::detector::Detector;

pub struct Figures {
    pub messages: usize,
    pub mean_chars: usize,
    /// Mean µs per message over the whole set.
    pub detector_us: f64,
    /// µs for one typical message of about 200 characters.
    pub typical_us: f64,
    /// Mean µs per message of the baseline.
    pub baseline_us: f64,
}

pub fn measure(repo: &Path) -> anyhow::Result<Figures> {
    let mut texts = Vec::new();
    let dir = repo.join("tests/data/crisis");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path)?.lines() {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
                    && let Some(text) = value["text"].as_str()
                {
                    texts.push(text.to_owned());
                }
            }
        }
    }
    anyhow::ensure!(
        !texts.is_empty(),
        "no labelled messages in {}",
        dir.display()
    );
    let detector = Detector::builtin();
    let rounds = 50;
    let per_message = |run: &dyn Fn(&str)| {
        for text in &texts {
            run(text);
        }
        let start = Instant::now();
        for _ in 0..rounds {
            for text in &texts {
                run(text);
            }
        }
        start.elapsed().as_secs_f64() * 1e6 / (rounds * texts.len()) as f64
    };
    let detector_us = per_message(&|t| {
        black_box(detector.assess(black_box(t)));
    });
    let baseline_us = per_message(&|t| {
        let lower = black_box(t).to_lowercase();
        black_box(lower.split_whitespace().count());
    });
    let typical = "honestly i don't know why i keep trying. work is a mess, my family \
                   keeps fighting, and tonight i just feel like everyone would be better \
                   off without me. i'm so tired of all of it";
    let start = Instant::now();
    let n = 20_000;
    for _ in 0..n {
        black_box(detector.assess(black_box(typical)));
    }
    let typical_us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    Ok(Figures {
        messages: texts.len(),
        mean_chars: texts.iter().map(|t| t.chars().count()).sum::<usize>() / texts.len(),
        detector_us,
        typical_us,
        baseline_us,
    })
}
