//! Smooth weighted round robin (the nginx algorithm): each pick adds every
//! ready server's weight to its credit, takes the server with the most credit
//! and charges it the total. Weights 5,1,1 give a,a,b,a,c,a,a rather than
//! a,a,a,a,a,b,c, and servers that become unready simply drop out of the sum.

use std::sync::Mutex;

use super::Candidate;

#[derive(Debug)]
pub struct RoundRobin {
    members: Vec<usize>,
    /// Credit per member. A short critical section per request; contention is
    /// negligible next to a proxied request, and it keeps the sequence exact.
    credit: Mutex<Vec<i64>>,
}

impl RoundRobin {
    pub fn new(members: Vec<usize>) -> Self {
        let credit = Mutex::new(vec![0; members.len()]);
        RoundRobin { members, credit }
    }

    pub fn select<C: Candidate>(
        &self,
        servers: &[C],
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        // A poisoned lock only means another request panicked mid-pick; the
        // credits are still integers, so carry on with them.
        let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, &m) in self.members.iter().enumerate() {
            let w = i64::from(servers[m].weight());
            if w == 0 || !accept(m) {
                continue;
            }
            credit[i] += w;
            total += w;
            if best.is_none_or(|b| credit[i] > credit[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        credit[b] -= total;
        Some(self.members[b])
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fakes;
    use super::*;

    #[test]
    fn weights_are_honoured_smoothly() {
        let s = fakes(&[5, 1, 1]);
        let rr = RoundRobin::new(vec![0, 1, 2]);
        let seq: Vec<usize> = (0..7).map(|_| rr.select(&s, |_| true).unwrap()).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn equal_weights_alternate() {
        let s = fakes(&[1, 1]);
        let rr = RoundRobin::new(vec![0, 1]);
        let seq: Vec<usize> = (0..4).map(|_| rr.select(&s, |_| true).unwrap()).collect();
        assert_eq!(seq, vec![0, 1, 0, 1]);
    }

    #[test]
    fn unready_and_zero_weight_servers_get_nothing() {
        let s = fakes(&[1, 0, 1]);
        let rr = RoundRobin::new(vec![0, 1, 2]);
        for _ in 0..10 {
            assert_eq!(rr.select(&s, |i| i != 0), Some(2));
        }
        assert_eq!(rr.select(&s, |i| i == 1), None);
    }
}
