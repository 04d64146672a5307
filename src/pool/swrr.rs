//! Smooth weighted round-robin (nginx's algorithm), precomputed.
//!
//! For a fixed set of healthy endpoints the algorithm's output is periodic (period = the sum
//! of the weights), so we compute one period when the healthy set changes and a pick is an
//! atomic counter increment plus an index: no lock on the hot path.

/// Longest period we precompute; heavier weights are scaled down proportionally.
const MAX_PERIOD: u64 = 1 << 14;

/// One period of nginx's smooth weighted round-robin over `(endpoint index, weight)`.
/// Weights 3:1 give a, a, b, a — not a, a, a, b.
pub fn sequence(weights: &[(usize, u32)]) -> Vec<u16> {
    let weights = reduce(weights);
    let total: i64 = weights.iter().map(|&(_, w)| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &(_, w)) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(weights[best].0 as u16);
    }
    out
}

/// Divides by the common divisor, then scales down if the period would still be too long.
fn reduce(weights: &[(usize, u32)]) -> Vec<(usize, u32)> {
    let g = weights.iter().fold(0u32, |g, &(_, w)| gcd(g, w)).max(1);
    let mut out: Vec<(usize, u32)> = weights.iter().map(|&(i, w)| (i, w / g)).collect();
    let total: u64 = out.iter().map(|&(_, w)| u64::from(w)).sum();
    if total > MAX_PERIOD {
        for (_, w) in &mut out {
            *w = ((u64::from(*w) * MAX_PERIOD / total) as u32).max(1);
        }
    }
    out
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_interleaving_like_nginx() {
        assert_eq!(sequence(&[(0, 3), (1, 1)]), [0, 0, 1, 0]);
        // nginx's documented example: weights 5, 1, 1 → a a b a c a a.
        assert_eq!(sequence(&[(0, 5), (1, 1), (2, 1)]), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn counts_are_exact_over_a_period() {
        let seq = sequence(&[(0, 3), (1, 2), (2, 1)]);
        assert_eq!(seq.len(), 6);
        let picks: Vec<u16> = seq.iter().cycle().take(6000).copied().collect();
        let count = |e: u16| picks.iter().filter(|&&p| p == e).count();
        assert_eq!((count(0), count(1), count(2)), (3000, 2000, 1000));
        assert_eq!(seq, [0, 1, 0, 2, 1, 0]);
    }

    #[test]
    fn common_divisors_and_huge_weights_keep_the_ratio() {
        assert_eq!(sequence(&[(4, 300), (7, 100)]), [4, 4, 7, 4]);
        let seq = sequence(&[(0, 3_000_000_000), (1, 1_000_000_000), (2, 1)]);
        assert!(seq.len() as u64 <= MAX_PERIOD + 3);
        let count = |e: u16| seq.iter().filter(|&&p| p == e).count() as f64;
        assert!((count(0) / count(1) - 3.0).abs() < 0.01);
        assert_eq!(count(2), 1.0, "every endpoint keeps at least one slot");
    }

    #[test]
    fn empty_and_single() {
        assert!(sequence(&[]).is_empty());
        assert_eq!(sequence(&[(2, 5)]), [2]);
    }
}
