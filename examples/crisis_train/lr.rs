//! Logistic regression for the trainer: Adagrad on hashed features, the two heads, the
//! confusion matrix of a combined level and the choice of thresholds.

use persona::features::crisis::detector::CrisisLevel;
use persona::features::crisis::detector::train::{Combine, FeatureConfig, combine};

use crate::TARGET_FALSE_ALARMS;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) features: FeatureConfig,
    pub(crate) bits: u8,
    pub(crate) l2: f32,
    pub(crate) epochs: usize,
}

/// One message ready for training: bucket indices with values, lexicon level and label.
pub(crate) struct Row {
    pub(crate) feats: Vec<(u32, f32)>,
    pub(crate) lexicon: CrisisLevel,
    pub(crate) verdicts: u16,
    pub(crate) label: CrisisLevel,
}

pub(crate) struct Heads {
    pub(crate) w: [Vec<f32>; 2],
    pub(crate) b: [f32; 2],
}

pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Adagrad logistic regression, one head for `>= medium` and one for `high`.
pub(crate) fn train(rows: &[&Row], cfg: &Config) -> Heads {
    let dim = 1usize << cfg.bits;
    let mut h = Heads {
        w: [vec![0.0; dim], vec![0.0; dim]],
        b: [0.0; 2],
    };
    let mut g2 = [vec![1e-6f32; dim], vec![1e-6f32; dim]];
    let mut gb = [1e-6f32; 2];
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut seed = 0x9e37_79b9_u64;
    let lr = 0.3;
    for _ in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            let row = rows[i];
            for k in 0..2 {
                let y = if k == 0 {
                    row.label >= CrisisLevel::Medium
                } else {
                    row.label == CrisisLevel::High
                };
                let z = h.b[k]
                    + row
                        .feats
                        .iter()
                        .map(|&(j, v)| h.w[k][j as usize] * v)
                        .sum::<f32>();
                let g = sigmoid(z) - f32::from(u8::from(y));
                for &(j, v) in &row.feats {
                    let j = j as usize;
                    let gi = g * v + cfg.l2 * h.w[k][j];
                    g2[k][j] += gi * gi;
                    h.w[k][j] -= lr * gi / g2[k][j].sqrt();
                }
                gb[k] += g * g;
                h.b[k] -= lr * g / gb[k].sqrt();
            }
        }
    }
    h
}

pub(crate) fn predict(h: &Heads, row: &Row) -> (f32, f32) {
    let z = |k: usize| {
        h.b[k]
            + row
                .feats
                .iter()
                .map(|&(j, v)| h.w[k][j as usize] * v)
                .sum::<f32>()
    };
    (sigmoid(z(0)), sigmoid(z(1)))
}

pub(crate) fn model_level((m, hi): (f32, f32), (tm, th): (f32, f32)) -> CrisisLevel {
    if hi >= th && m >= tm.min(th) {
        CrisisLevel::High
    } else if m >= tm {
        CrisisLevel::Medium
    } else {
        CrisisLevel::None
    }
}

pub(crate) type Matrix = [[usize; 4]; 4];

pub(crate) fn matrix(rows: &[&Row], probs: &[(f32, f32)], t: (f32, f32), mode: Combine) -> Matrix {
    let mut m = [[0; 4]; 4];
    for (row, &p) in rows.iter().zip(probs) {
        let level = combine(mode, row.lexicon, row.verdicts, model_level(p, t));
        m[row.label as usize][level as usize] += 1;
    }
    m
}

/// (high detected at >= medium, none detected at >= medium, exact) as fractions.
pub(crate) fn rates(m: &Matrix) -> (f64, f64, f64) {
    let at = |r: usize| (m[r][2] + m[r][3]) as f64 / m[r].iter().sum::<usize>().max(1) as f64;
    let total: usize = m.iter().flatten().sum();
    let exact: usize = (0..4).map(|i| m[i][i]).sum();
    (at(3), at(0), exact as f64 / total.max(1) as f64)
}

/// Lowest medium threshold keeping false alarms within the target, then the high threshold
/// with the best exact agreement plus recall that still keeps them there.
pub(crate) fn thresholds(rows: &[&Row], probs: &[(f32, f32)], mode: Combine) -> (f32, f32) {
    let grid: Vec<f32> = (1..100).map(|i| i as f32 / 100.0).collect();
    let tm = grid
        .iter()
        .copied()
        .find(|&tm| rates(&matrix(rows, probs, (tm, 1.01), mode)).1 <= TARGET_FALSE_ALARMS)
        .unwrap_or(0.99);
    let mut best = (tm, 0.5, -1.0);
    for &th in &grid {
        let (recall, alarms, exact) = rates(&matrix(rows, probs, (tm, th), mode));
        let score = exact + recall
            - if alarms > TARGET_FALSE_ALARMS {
                9.0
            } else {
                0.0
            };
        if score > best.2 {
            best = (tm, th, score);
        }
    }
    (best.0, best.1)
}
