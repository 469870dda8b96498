//! The admission limits of the accept loop: open sockets per client IP and sockets that have
//! not (yet) become WebSocket connections. Each is counted here and released by a guard's
//! `Drop`, so no early return can leak a slot. (New connections per second per client IP are a
//! per-app rate, checked by the upgrade handler where the app is known: `api/rate_limit.rs`.)

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The counters shared by the accept loop and every connection it admitted.
pub(crate) struct Limits {
    max_per_ip: usize,
    max_pending: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pending: AtomicUsize,
}

/// Why a new socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-connections-per-ip` open sockets from this address already.
    PerIp,
    /// `--max-pending-handshakes` sockets are mid-handshake already.
    Pending,
}

impl Refusal {
    /// The `reason` label of `rf_broadcast_refusals_total`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::PerIp => "max_connections_per_ip",
            Refusal::Pending => "max_pending_handshakes",
        }
    }
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

impl Limits {
    /// `0` turns a limit off.
    pub(crate) fn new(max_per_ip: usize, max_pending: usize) -> Arc<Self> {
        Arc::new(Limits {
            max_per_ip,
            max_pending,
            per_ip: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
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
        let limits = Limits::new(2, 0);
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
        let limits = Limits::new(0, 2);
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
}
