//! The admission limits of the accept loop: open sockets per client IP, sockets that have not
//! (yet) become WebSocket connections, and new WebSocket upgrades per second per client IP.
//! Each is counted here and released by a guard's `Drop`, so no early return can leak a slot.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The counters shared by the accept loop and every connection it admitted.
pub(crate) struct Limits {
    max_per_ip: usize,
    max_pending: usize,
    upgrades_per_second: u32,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pending: AtomicUsize,
    rate: Mutex<RateWindows>,
}

/// Why a new socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-connections-per-ip` open sockets from this address already.
    PerIp,
    /// `--max-pending-handshakes` sockets are mid-handshake already.
    Pending,
}

/// One open socket's slot in its IP's count; held by the socket's IO for its whole life, the
/// WebSocket after the upgrade included.
pub(crate) struct IpSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

/// One slot of the pending-handshake count; dropped when the socket upgrades or closes.
pub(crate) struct PendingSlot {
    limits: Arc<Limits>,
}

/// Fixed one-second windows of upgrade counts per IP.
struct RateWindows {
    started: Instant,
    /// IP → (window number, upgrades in it).
    counts: HashMap<IpAddr, (u64, u32)>,
}

impl Limits {
    /// `0` turns a limit off.
    pub(crate) fn new(
        max_per_ip: usize,
        max_pending: usize,
        upgrades_per_second: u32,
    ) -> Arc<Self> {
        Arc::new(Limits {
            max_per_ip,
            max_pending,
            upgrades_per_second,
            per_ip: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
            rate: Mutex::new(RateWindows {
                started: Instant::now(),
                counts: HashMap::new(),
            }),
        })
    }

    /// Admit a just-accepted socket from `ip`, or say which limit it hit.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(IpSlot, PendingSlot), Refusal> {
        let ip = canonical(ip);
        {
            let mut per_ip = self.per_ip.lock();
            let count = per_ip.entry(ip).or_insert(0);
            if self.max_per_ip > 0 && *count >= self.max_per_ip {
                return Err(Refusal::PerIp);
            }
            *count += 1;
        }
        let ip_slot = IpSlot {
            limits: self.clone(),
            ip,
        };
        let pending = self.pending.fetch_add(1, Ordering::AcqRel);
        let pending_slot = PendingSlot {
            limits: self.clone(),
        };
        if self.max_pending > 0 && pending >= self.max_pending {
            return Err(Refusal::Pending); // both slots drop here
        }
        Ok((ip_slot, pending_slot))
    }

    /// Count one WebSocket upgrade request from `ip`; false when it is over
    /// `--connection-rate-per-ip` this second (always true when the limit is off).
    pub(crate) fn allow_upgrade(&self, ip: IpAddr) -> bool {
        if self.upgrades_per_second == 0 {
            return true;
        }
        let ip = canonical(ip);
        let mut rate = self.rate.lock();
        let window = rate.started.elapsed().as_secs();
        if rate.counts.len() >= RATE_TABLE_SWEEP_AT {
            // Forget addresses whose window is over, so the table cannot grow without bound.
            rate.counts.retain(|_, (w, _)| *w == window);
        }
        let entry = rate.counts.entry(ip).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= self.upgrades_per_second {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Open sockets from `ip` right now.
    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        self.per_ip.lock().get(&canonical(ip)).copied().unwrap_or(0)
    }

    /// Sockets that have not completed a WebSocket upgrade right now.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }
}

/// Entries in the upgrade-rate table before expired ones are swept.
const RATE_TABLE_SWEEP_AT: usize = 4096;

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) counts as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock();
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.limits.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn per_ip_cap_counts_open_sockets_and_frees_on_drop() {
        let limits = Limits::new(2, 0, 0);
        let a1 = limits.admit(A).unwrap();
        let a2 = limits.admit(A).unwrap();
        assert_eq!(limits.admit(A).err(), Some(Refusal::PerIp));
        let _b = limits.admit(B).unwrap();
        // A refused socket holds no slot; the pending one is released on its own.
        assert_eq!(limits.open_from(A), 2);
        drop(a1.1);
        assert_eq!(limits.open_from(A), 2, "the IP slot outlives the handshake");
        drop(a1.0);
        assert_eq!(limits.open_from(A), 1);
        assert!(limits.admit(A).is_ok());
        drop(a2);
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(limits.open_from(mapped), 1);
    }

    #[test]
    fn pending_cap_refuses_beyond_and_releases() {
        let limits = Limits::new(0, 2, 0);
        let p1 = limits.admit(A).unwrap();
        let _p2 = limits.admit(B).unwrap();
        assert_eq!(limits.admit(A).err(), Some(Refusal::Pending));
        assert_eq!(limits.pending(), 2);
        assert_eq!(
            limits.open_from(A),
            1,
            "the refused socket gave its IP slot back"
        );
        drop(p1.1);
        assert!(limits.admit(A).is_ok());
    }

    #[test]
    fn upgrade_rate_is_per_ip_per_second() {
        let limits = Limits::new(0, 0, 3);
        assert!((0..3).all(|_| limits.allow_upgrade(A)));
        assert!(!limits.allow_upgrade(A));
        assert!(limits.allow_upgrade(B));
        let off = Limits::new(0, 0, 0);
        assert!((0..10_000).all(|_| off.allow_upgrade(A)));
    }
}
