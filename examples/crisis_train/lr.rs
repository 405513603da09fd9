//! Logistic regression for the trainer: Adagrad on hashed features, the two heads, the
//! confusion matrix of a combined level and the choice of thresholds.

use persona::features::crisis::detector::CrisisLevel;
use persona::features::crisis::detector::train::{
    Combine, FeatureConfig, Thresholds, combine, model_level,
};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) features: FeatureConfig,
    pub(crate) bits: u8,
    pub(crate) l2: f32,
    pub(crate) epochs: usize,
    /// Thresholds keep false alarms on `none` (out-of-fold) at or below this.
    pub(crate) target_fa: f64,
    /// Sample weight of `high` messages (both heads), to favour recall.
    pub(crate) high_weight: f32,
    /// Sample weight of `none` messages (both heads): ordinary chat is most of what a
    /// deployed detector reads.
    pub(crate) none_weight: f32,
    /// Hidden units of the deep part beside the two linear heads (0: logistic regression
    /// alone; `CRISIS_HIDDEN`).
    pub(crate) hidden: usize,
    /// Adagrad's learning rate for the deep part (`CRISIS_DEEP_LR`).
    pub(crate) deep_lr: f32,
}

/// One message ready for training: bucket indices with values, lexicon level and label.
pub(crate) struct Row {
    pub(crate) feats: Vec<(u32, f32)>,
    pub(crate) lexicon: CrisisLevel,
    pub(crate) verdicts: u16,
    pub(crate) label: CrisisLevel,
    pub(crate) indonesian: bool,
    pub(crate) text: String,
}

pub(crate) struct Heads {
    pub(crate) w: [Vec<f32>; 2],
    pub(crate) b: [f32; 2],
    /// The deep part, when `Config::hidden` > 0.
    pub(crate) deep: Option<Deep>,
}

/// One hidden layer of ReLU units over the same hashed features, feeding both heads
/// ("wide and deep"): the linear heads keep what single features say, the hidden units can
/// learn which features mean more together ("pills" with "tonight", not with "flu").
pub(crate) struct Deep {
    pub(crate) hidden: usize,
    /// Bucket-major: the `hidden` input weights of bucket j at `j * hidden`.
    pub(crate) w1: Vec<f32>,
    pub(crate) b1: Vec<f32>,
    /// Per head, the `hidden` output weights.
    pub(crate) w2: [Vec<f32>; 2],
}

impl Deep {
    fn activations(&self, feats: &[(u32, f32)]) -> Vec<f32> {
        let mut a = self.b1.clone();
        for &(j, v) in feats {
            let row = &self.w1[j as usize * self.hidden..][..self.hidden];
            for (x, w) in a.iter_mut().zip(row) {
                *x += w * v;
            }
        }
        for x in &mut a {
            *x = x.max(0.0);
        }
        a
    }
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A uniform draw in [-scale, scale).
fn uniform(seed: &mut u64, scale: f32) -> f32 {
    ((xorshift(seed) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
}

pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Adagrad logistic regression, one head for `>= medium` and one for `high`; with
/// `cfg.hidden` > 0, a hidden layer feeding both heads, trained with them.
pub(crate) fn train(rows: &[&Row], cfg: &Config) -> Heads {
    let dim = 1usize << cfg.bits;
    let mut seed = 0x9e37_79b9_u64;
    let hid = cfg.hidden;
    let mut h = Heads {
        w: [vec![0.0; dim], vec![0.0; dim]],
        b: [0.0; 2],
        deep: (hid > 0).then(|| Deep {
            hidden: hid,
            w1: (0..dim * hid).map(|_| uniform(&mut seed, 0.1)).collect(),
            b1: vec![0.01; hid],
            w2: [0, 1].map(|_| (0..hid).map(|_| uniform(&mut seed, 0.1)).collect()),
        }),
    };
    let mut g2 = [vec![1e-6f32; dim], vec![1e-6f32; dim]];
    let mut gb = [1e-6f32; 2];
    let (mut g1, mut gb1, mut gw2) = (
        vec![1e-6f32; dim * hid],
        vec![1e-6f32; hid],
        [vec![1e-6f32; hid], vec![1e-6f32; hid]],
    );
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let lr = 0.3;
    let deep_lr = cfg.deep_lr;
    let mut back = vec![0.0f32; hid];
    for _ in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, (xorshift(&mut seed) % (i as u64 + 1)) as usize);
        }
        for &i in &order {
            let row = rows[i];
            let act = h.deep.as_ref().map(|d| d.activations(&row.feats));
            back.iter_mut().for_each(|x| *x = 0.0);
            let w = match row.label {
                CrisisLevel::High => cfg.high_weight,
                CrisisLevel::None => cfg.none_weight,
                _ => 1.0,
            };
            for k in 0..2 {
                let y = if k == 0 {
                    row.label >= CrisisLevel::Medium
                } else {
                    row.label == CrisisLevel::High
                };
                let mut z = h.b[k]
                    + row
                        .feats
                        .iter()
                        .map(|&(j, v)| h.w[k][j as usize] * v)
                        .sum::<f32>();
                if let (Some(d), Some(a)) = (&h.deep, &act) {
                    z += d.w2[k].iter().zip(a).map(|(u, x)| u * x).sum::<f32>();
                }
                let g = (sigmoid(z) - f32::from(u8::from(y))) * w;
                for &(j, v) in &row.feats {
                    let j = j as usize;
                    let gi = g * v + cfg.l2 * h.w[k][j];
                    g2[k][j] += gi * gi;
                    h.w[k][j] -= lr * gi / g2[k][j].sqrt();
                }
                gb[k] += g * g;
                h.b[k] -= lr * g / gb[k].sqrt();
                if let (Some(d), Some(a)) = (&mut h.deep, &act) {
                    for u in 0..hid {
                        if a[u] > 0.0 {
                            back[u] += g * d.w2[k][u];
                        }
                        let gu = g * a[u] + cfg.l2 * d.w2[k][u];
                        gw2[k][u] += gu * gu;
                        d.w2[k][u] -= deep_lr * gu / gw2[k][u].sqrt();
                    }
                }
            }
            if let Some(d) = &mut h.deep {
                for &(j, v) in &row.feats {
                    let base = j as usize * hid;
                    for u in 0..hid {
                        if back[u] == 0.0 {
                            continue;
                        }
                        let gi = back[u] * v + cfg.l2 * d.w1[base + u];
                        g1[base + u] += gi * gi;
                        d.w1[base + u] -= deep_lr * gi / g1[base + u].sqrt();
                    }
                }
                for u in 0..hid {
                    gb1[u] += back[u] * back[u];
                    d.b1[u] -= deep_lr * back[u] / gb1[u].sqrt();
                }
            }
        }
    }
    h
}

pub(crate) fn predict(h: &Heads, row: &Row) -> (f32, f32) {
    let act = h.deep.as_ref().map(|d| d.activations(&row.feats));
    let z = |k: usize| {
        h.b[k]
            + row
                .feats
                .iter()
                .map(|&(j, v)| h.w[k][j as usize] * v)
                .sum::<f32>()
            + match (&h.deep, &act) {
                (Some(d), Some(a)) => d.w2[k].iter().zip(a).map(|(u, x)| u * x).sum::<f32>(),
                _ => 0.0,
            }
    };
    (sigmoid(z(0)), sigmoid(z(1)))
}

pub(crate) type Matrix = [[usize; 4]; 4];

pub(crate) fn matrix(rows: &[&Row], probs: &[(f32, f32)], t: Thresholds, mode: Combine) -> Matrix {
    let mut m = [[0; 4]; 4];
    for (row, &p) in rows.iter().zip(probs) {
        m[row.label as usize][level(row, p, t, mode) as usize] += 1;
    }
    m
}

/// The detector's level for `row` with the model's probabilities `p`.
pub(crate) fn level(row: &Row, p: (f32, f32), t: Thresholds, mode: Combine) -> CrisisLevel {
    combine(
        mode,
        row.lexicon,
        row.verdicts,
        model_level(p, t, row.lexicon, row.verdicts),
    )
}

/// Share of `medium` messages detected at >= medium.
pub(crate) fn medium_recall(m: &Matrix) -> f64 {
    (m[2][2] + m[2][3]) as f64 / m[2].iter().sum::<usize>().max(1) as f64
}

/// (high detected at >= medium, none detected at >= medium, exact) as fractions.
pub(crate) fn rates(m: &Matrix) -> (f64, f64, f64) {
    let at = |r: usize| (m[r][2] + m[r][3]) as f64 / m[r].iter().sum::<usize>().max(1) as f64;
    let total: usize = m.iter().flatten().sum();
    let exact: usize = (0..4).map(|i| m[i][i]).sum();
    (at(3), at(0), exact as f64 / total.max(1) as f64)
}

/// How much the recall of `medium` (at >= medium) counts beside that of `high` when
/// thresholds are chosen: passive ideation and third persons must not be left to chance.
const MEDIUM_WEIGHT: f64 = 0.5;

/// Where the lexicon itself sees medium or high, a probability of at least this much is
/// enough for the model to agree: the lexicon's clear phrases ("suicide", "i bought a rope
/// today") must not hang on a threshold tuned for the messages it does not catch.
const SUPPORT_CAP: f32 = 0.5;

/// The thresholds with the best recall of `high` (plus half that of `medium`) at >= medium
/// that keep false alarms on `none` within `target`, ties broken by exact agreement: first the pair without the
/// lexicon's support, then (for the `Support` modes) the lower pair where the lexicon agrees.
pub(crate) fn thresholds(
    rows: &[&Row],
    probs: &[(f32, f32)],
    mode: Combine,
    target: f64,
) -> Thresholds {
    let grid: Vec<f32> = (1..50).map(|i| i as f32 / 50.0).collect();
    let mut best = ([0.99; 5], (-1.0, -1.0));
    for &tm in &grid {
        for &th in &grid {
            let t = [tm, th, tm, th, tm];
            let m = matrix(rows, probs, t, mode);
            let (recall, alarms, exact) = rates(&m);
            let score = recall + MEDIUM_WEIGHT * medium_recall(&m);
            if alarms <= target && (score, exact) > best.1 {
                best = (t, (score, exact));
            }
        }
    }
    if matches!(mode, Combine::Support | Combine::SupportVeto) {
        let [tm, th, ..] = best.0;
        let cap = |t: f32| t.min(SUPPORT_CAP);
        best = ([tm, th, cap(tm), cap(th), tm], (-1.0, -1.0));
        for &sm in grid.iter().filter(|&&x| x <= cap(tm)) {
            for &sh in grid.iter().filter(|&&x| x <= cap(th)) {
                let t = [tm, th, sm, sh, tm];
                let m = matrix(rows, probs, t, mode);
                let (recall, alarms, exact) = rates(&m);
                let score = recall + MEDIUM_WEIGHT * medium_recall(&m);
                if alarms <= target && (score, exact) > best.1 {
                    best = (t, (score, exact));
                }
            }
        }
    }
    best.0
}

/// `t` with its `>= medium` thresholds (alone and with the lexicon's support) chosen anew on
/// `rows` for the best recall within `target` false alarms; the `high` ones stay as they
/// are (a few hundred messages decide the medium line, not where medium ends and high
/// begins), and so does the one for messages whose risk words the lexicon explained away
/// (negated, idiom, hedge, reported; unless the new medium one is stricter still).
pub(crate) fn calibrate_medium(
    rows: &[&Row],
    probs: &[(f32, f32)],
    mode: Combine,
    target: f64,
    t: Thresholds,
) -> Thresholds {
    let grid: Vec<f32> = (1..50).map(|i| i as f32 / 50.0).collect();
    let mut best = (t, (-1.0, -1.0));
    for &tm in &grid {
        for &sm in grid.iter().filter(|&&x| x <= tm.min(SUPPORT_CAP)) {
            let c = [tm, t[1], sm, t[3], t[4].max(tm)];
            let m = matrix(rows, probs, c, mode);
            let (recall, alarms, exact) = rates(&m);
            let score = recall + MEDIUM_WEIGHT * medium_recall(&m);
            // Ties go to the higher thresholds (fewer alarms on text not seen here).
            if alarms <= target && (score, exact) >= best.1 {
                best = (c, (score, exact));
            }
        }
    }
    // Where the lexicon explained the risk words away, as strict as these rows allow
    // without losing a single `high` or `medium` message they catch.
    let recall = |t: Thresholds| {
        let m = matrix(rows, probs, t, mode);
        (rates(&m).0, medium_recall(&m))
    };
    let (mut t, keep) = (best.0, recall(best.0));
    for &strict in grid.iter().rev().filter(|&&x| x > t[4]) {
        let c = [t[0], t[1], t[2], t[3], strict];
        if recall(c) >= keep {
            t = c;
            break;
        }
    }
    t
}

/// Recall of `high` at >= medium with the thresholds chosen on the test rows themselves
/// (the best any thresholds could do) while false alarms stay within `fa`.
pub(crate) fn oracle_recall(rows: &[&Row], probs: &[(f32, f32)], mode: Combine, fa: f64) -> f64 {
    (1..50)
        .flat_map(|tm| (1..50).map(move |th| [tm as f32 / 50.0, th as f32 / 50.0]))
        .map(|[tm, th]| rates(&matrix(rows, probs, [tm, th, tm, th, tm], mode)))
        .filter(|r| r.1 <= fa)
        .map(|r| r.0)
        .fold(0.0, f64::max)
}
