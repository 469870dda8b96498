//! What the load generator reads from the operating system: CPU seconds and RSS of a process
//! (`/proc/PID/stat`, `/proc/PID/status`), open file counts and limits, TCP socket states, and
//! the wall clock used for end-to-end timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch; the same clock in every process on the machine, so a
/// timestamp written by the publisher can be compared with the receive time in a subscriber.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process in seconds ("self" for the load generator itself).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// CPU seconds of several processes together (`None` if any cannot be read).
pub fn cpu_seconds_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()
}

/// Resident set size in KiB (VmRSS).
pub fn rss_kb(pid: &str) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: &str, name: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// Number of open file descriptors of a process.
pub fn fd_count(pid: &str) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The soft "Max open files" of another process, from /proc/PID/limits.
pub fn nofile_limit_of(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raise our own soft open-file limit to the hard limit; returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
        r.rlim_cur
    }
}

/// A snapshot of the server process and of the load generator itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    pub server_cpu: Option<f64>,
    pub server_rss_kb: Option<u64>,
    pub self_cpu: f64,
    pub self_rss_kb: u64,
}

impl Probe {
    pub fn take(server_pid: Option<u32>) -> Probe {
        let sp = server_pid.map(|p| p.to_string());
        Probe {
            server_cpu: sp.as_deref().and_then(cpu_seconds),
            server_rss_kb: sp.as_deref().and_then(rss_kb),
            self_cpu: cpu_seconds("self").unwrap_or(0.0),
            self_rss_kb: rss_kb("self").unwrap_or(0),
        }
    }
}

/// IPv4 TCP sockets (from /proc/net/tcp) whose local or remote port is in `ports`, as
/// (local port, remote port, state); state is the kernel's code: 01 ESTABLISHED,
/// 04 FIN_WAIT1, 08 CLOSE_WAIT, ... Both ends of a loopback connection are listed.
pub fn tcp_sockets(ports: &std::collections::HashSet<u16>) -> Vec<(u16, u16, u8)> {
    let mut out = Vec::new();
    let Ok(s) = std::fs::read_to_string("/proc/net/tcp") else {
        return out;
    };
    let port_of = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    for line in s.lines().skip(1) {
        let mut it = line.split_whitespace();
        let (_, Some(local), Some(remote), Some(st)) = (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let (Some(lp), Some(rp), Ok(state)) =
            (port_of(local), port_of(remote), u8::from_str_radix(st, 16))
        else {
            continue;
        };
        if ports.contains(&lp) || ports.contains(&rp) {
            out.push((lp, rp, state));
        }
    }
    out
}

pub fn tcp_state_name(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        _ => "OTHER",
    }
}
