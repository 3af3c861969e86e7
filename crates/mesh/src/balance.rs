//! The order in which a Dispatch tries the peers that serve a namespace.
//! Round robin spreads each namespace's calls evenly over its peers; a
//! `hash_key` routing hint pins a key to
//! one peer with rendezvous hashing (consistent: a peer leaving moves only its
//! own keys). Either way every candidate appears once, so a failure falls
//! through to the next.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// The `routing_hints` key whose value selects consistent hashing.
pub const HASH_KEY_HINT: &str = "hash_key";

/// Namespaces that keep a cursor; when one more is needed, all start over
/// (peers choose the namespaces they announce, so the map must stay bounded).
const MAX_CURSORS: usize = 4096;

/// Round-robin cursors, one per namespace: calls to one namespace take turns
/// among its peers whatever other namespaces are called in between.
#[derive(Debug, Default)]
pub struct RoundRobin(Mutex<HashMap<String, usize>>);

impl RoundRobin {
    /// `candidates` for `namespace` rotated to start at its next position.
    pub fn order<T>(&self, namespace: &str, mut candidates: Vec<T>) -> Vec<T> {
        if candidates.len() > 1 {
            let start = self.turn(namespace) % candidates.len();
            candidates.rotate_left(start);
        }
        candidates
    }

    /// `namespace`'s turn number, counting up from 0.
    fn turn(&self, namespace: &str) -> usize {
        let mut cursors = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cursor) = cursors.get_mut(namespace) {
            let turn = *cursor;
            *cursor = turn.wrapping_add(1);
            return turn;
        }
        if cursors.len() >= MAX_CURSORS {
            cursors.clear();
        }
        cursors.insert(namespace.to_owned(), 1);
        0
    }
}

/// `candidates` (by peer id) sorted by their rendezvous score for `key`,
/// highest first.
pub fn by_hash<T>(key: &str, mut candidates: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
    candidates.sort_by_cached_key(|c| std::cmp::Reverse(score(key, id(c))));
    candidates
}

fn score(key: &str, peer: &str) -> u64 {
    // SipHash with fixed keys: stable across processes of the same build,
    // which is all routing needs.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    peer.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_everyone_in_turn() {
        let rr = RoundRobin::default();
        let firsts: Vec<i32> = (0..6).map(|_| rr.order("ns", vec![1, 2, 3])[0]).collect();
        assert_eq!(firsts, [1, 2, 3, 1, 2, 3]);
    }

    /// Calls to two namespaces served by the same two peers, alternating:
    /// one cursor for both would send every call of a namespace to the same
    /// peer.
    #[test]
    fn each_namespace_takes_its_own_turns() {
        let rr = RoundRobin::default();
        let (mut x, mut y) = (vec![], vec![]);
        for _ in 0..4 {
            x.push(rr.order("x", vec!["p1", "p2"])[0]);
            y.push(rr.order("y", vec!["p1", "p2"])[0]);
        }
        assert_eq!(x, ["p1", "p2", "p1", "p2"]);
        assert_eq!(y, ["p1", "p2", "p1", "p2"]);
    }

    #[test]
    fn cursors_stay_bounded_when_peers_announce_many_namespaces() {
        let rr = RoundRobin::default();
        for n in 0..MAX_CURSORS * 2 + 5 {
            rr.order(&format!("ns-{n}"), vec![1, 2]);
        }
        let kept = rr.0.lock().expect("not poisoned").len();
        assert!(kept <= MAX_CURSORS, "{kept} cursors kept");
        // A namespace seen again after a reset starts from the first peer.
        assert_eq!(rr.order("ns-0", vec![1, 2])[0], 1);
    }

    #[test]
    fn hashing_is_stable_and_moves_only_the_leavers_keys() {
        let peers = vec!["a", "b", "c"];
        let mut moved = 0;
        for k in 0..300 {
            let key = format!("tenant-{k}");
            let first = by_hash(&key, peers.clone(), |p| p)[0];
            assert_eq!(first, by_hash(&key, peers.clone(), |p| p)[0]);
            let without_c = by_hash(&key, vec!["a", "b"], |p| p)[0];
            if first != "c" {
                assert_eq!(first, without_c);
            } else {
                moved += 1;
            }
        }
        assert!(moved > 50 && moved < 150, "c owned {moved} of 300 keys");
    }
}
