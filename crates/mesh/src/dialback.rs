//! The gate in front of dial-backs. Every accepted Connect asks the receiving
//! node to dial the caller back, and a dial-back is a task that may wait up to
//! twice the connect timeout on an unreachable address. Without a bound, a
//! caller repeating Connect (by mistake or to exhaust the node) would pile up
//! one task per call. So at most one dial-back per address is in flight, and
//! at most `MeshConfig::max_dialbacks` in all; a Connect that finds the gate closed is
//! still answered, it just does not start another dial-back (the one in
//! flight, or the caller's next Connect, links the two nodes).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The addresses being dialled back now.
#[derive(Debug)]
pub(crate) struct DialBacks {
    in_flight: Arc<Mutex<HashSet<String>>>,
    max: usize,
}

impl DialBacks {
    /// A gate letting `max` dial-backs run at once.
    pub fn new(max: usize) -> Self {
        Self {
            in_flight: Arc::default(),
            max,
        }
    }

    /// A permit to dial `address` back, or `None` when one is already in
    /// flight to it or the global limit is reached. The permit is held by the
    /// dial-back task; dropping it (the task ended, failed or was aborted)
    /// opens the gate again.
    pub fn try_start(&self, address: &str) -> Option<Permit> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.len() >= self.max || in_flight.contains(address) {
            return None;
        }
        in_flight.insert(address.to_string());
        Some(Permit {
            in_flight: self.in_flight.clone(),
            address: address.to_string(),
        })
    }
}

/// One dial-back in flight; see [`DialBacks::try_start`].
#[derive(Debug)]
pub(crate) struct Permit {
    in_flight: Arc<Mutex<HashSet<String>>>,
    address: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dial_back_per_address_until_it_ends() {
        let gate = DialBacks::new(4);
        let first = gate.try_start("10.0.0.1:7000");
        assert!(first.is_some());
        for _ in 0..100 {
            assert!(gate.try_start("10.0.0.1:7000").is_none());
        }
        let other = gate.try_start("10.0.0.2:7000");
        assert!(other.is_some(), "another address is not held up");
        drop(first);
        assert!(
            gate.try_start("10.0.0.1:7000").is_some(),
            "the gate reopens once the dial-back ended"
        );
    }

    #[test]
    fn global_limit_holds_across_addresses() {
        let gate = DialBacks::new(3);
        let permits: Vec<Permit> = (0..10)
            .filter_map(|i| gate.try_start(&format!("10.0.0.{i}:7000")))
            .collect();
        assert_eq!(permits.len(), 3);
        drop(permits);
        assert!(gate.try_start("10.0.0.9:7000").is_some());
    }
}
