//! Least connections: the ready server with the fewest requests in flight
//! relative to its weight. Ties rotate, so an idle pool still spreads load.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::Candidate;

#[derive(Debug)]
pub struct LeastConn {
    members: Vec<usize>,
    cursor: AtomicUsize,
}

impl LeastConn {
    pub fn new(members: Vec<usize>) -> Self {
        LeastConn {
            members,
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn select<C: Candidate>(
        &self,
        servers: &[C],
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Relaxed) % n;
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let m = self.members[(start + k) % n];
            let w = u64::from(servers[m].weight());
            if w == 0 || !accept(m) {
                continue;
            }
            let a = servers[m].active();
            // a/w < best_a/best_w without division.
            if best.is_none_or(|(_, ba, bw)| a * bw < ba * w) {
                best = Some((m, a, w));
            }
        }
        best.map(|(m, _, _)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fakes;
    use super::*;

    #[test]
    fn picks_the_least_loaded_relative_to_weight() {
        let s = fakes(&[1, 1, 2]);
        s[0].active.set(3);
        s[1].active.set(1);
        s[2].active.set(3);
        let lc = LeastConn::new(vec![0, 1, 2]);
        assert_eq!(lc.select(&s, |_| true), Some(1));
        s[1].active.set(2);
        assert_eq!(lc.select(&s, |_| true), Some(2));
    }

    #[test]
    fn ties_rotate() {
        let s = fakes(&[1, 1]);
        let lc = LeastConn::new(vec![0, 1]);
        let a = lc.select(&s, |_| true);
        let b = lc.select(&s, |_| true);
        assert_ne!(a, b);
    }
}
