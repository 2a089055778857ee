//! Watches a server's process tree while a load runs: the peak of RSS (and
//! optionally PSS) summed over the tree, sampled; the root's own VmHWM
//! (exact for a one-process server, which then needs no sampling); and the
//! CPU time the tree used during the load.
//!
//! The tree is the root and its descendants, found from the parent pid in
//! every /proc/PID/stat (this kernel has no /proc/PID/task/TID/children).
//! CPU: each live process's utime+stime plus cutime+cstime, which hold the
//! times of the children it has already reaped (Dovecot's master reaps its
//! per-login and per-session processes), so the sum over the tree covers
//! every process that ran, including ones that came and went between
//! samples.
//!
//! Sampling costs CPU on the machine under test: a /proc scan is about a
//! millisecond, and reading smaps_rollup (PSS) of a process with a few
//! hundred MiB mapped takes over 10 ms. So PSS is opt-in and read on every
//! fifth sample only, and the sampler reports its own CPU time, which the
//! load generator subtracts from its own.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::stats::{stat_fields, ticks};

/// What the watcher saw.
#[derive(Default, Clone, Copy)]
pub(crate) struct Peak {
    /// Whether the tree was sampled at all (else only the root's VmHWM).
    pub(crate) sampled: bool,
    /// Peak of the summed VmRSS, KiB.
    pub(crate) rss_kib: u64,
    /// Peak of the summed Pss, KiB (0 unless asked for).
    pub(crate) pss_kib: u64,
    /// The root's VmHWM at the end, KiB.
    pub(crate) root_hwm_kib: u64,
    /// Most processes seen in the tree at once.
    pub(crate) processes: usize,
    /// CPU seconds the tree used between start and stop.
    pub(crate) cpu_seconds: f64,
    /// CPU seconds the sampling thread used.
    pub(crate) sampler_cpu_seconds: f64,
}

/// A running watcher; [`Watcher::stop`] returns what it saw.
pub(crate) struct Watcher {
    sampler: Option<(Arc<AtomicBool>, JoinHandle<Peak>)>,
    root: u32,
    cpu_start: f64,
}

impl Watcher {
    /// Starts watching the tree under `root`, sampling its memory every
    /// `interval` (none: no sampling thread), PSS too if `pss`.
    pub(crate) fn start(root: u32, interval: Option<Duration>, pss: bool) -> Watcher {
        let cpu_start = tree_cpu(&tree(root));
        let sampler = interval.map(|interval| {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let handle = std::thread::spawn(move || {
                let mut peak = Peak {
                    sampled: true,
                    ..Peak::default()
                };
                for n in 0u64.. {
                    // PSS on every fifth sample only: it is the costly read.
                    sample(root, pss && n % 5 == 0, &mut peak);
                    if flag.load(Ordering::Relaxed) {
                        peak.sampler_cpu_seconds = thread_cpu_seconds();
                        return peak;
                    }
                    std::thread::sleep(interval);
                }
                peak
            });
            (stop, handle)
        });
        Watcher {
            sampler,
            root,
            cpu_start,
        }
    }

    /// Stops sampling (after one last sample) and reports.
    pub(crate) fn stop(self) -> Peak {
        let cpu_end = tree_cpu(&tree(self.root));
        let mut peak = match self.sampler {
            Some((stop, handle)) => {
                stop.store(true, Ordering::Relaxed);
                handle.join().unwrap_or_default()
            }
            None => Peak::default(),
        };
        peak.root_hwm_kib = status_kib(self.root, "VmHWM:");
        peak.cpu_seconds = (cpu_end - self.cpu_start).max(0.0);
        peak
    }
}

/// CPU seconds of the calling thread.
fn thread_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| stat_fields(&stat).map(|f| ticks(&f, 11) + ticks(&f, 12)))
        .unwrap_or(0.0)
}

fn sample(root: u32, with_pss: bool, peak: &mut Peak) {
    let pids = tree(root);
    let (mut rss, mut pss) = (0, 0);
    for &pid in &pids {
        rss += status_kib(pid, "VmRSS:");
        if with_pss {
            pss += pss_kib(pid);
        }
    }
    peak.rss_kib = peak.rss_kib.max(rss);
    peak.pss_kib = peak.pss_kib.max(pss);
    peak.processes = peak.processes.max(pids.len());
}

/// `root` and every descendant alive now.
fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(ppid) =
                stat_fields(&stat).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend_from_slice(kids);
        }
        i += 1;
    }
    out
}

/// CPU seconds of `pids` and of the children they have reaped.
fn tree_cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| match stat_fields(&stat) {
            // utime(11) stime(12) cutime(13) cstime(14), counted after the name.
            Some(f) => ticks(&f, 11) + ticks(&f, 12) + ticks(&f, 13) + ticks(&f, 14),
            None => 0.0,
        })
        .sum()
}

/// A `Key:   123 kB` line of /proc/PID/status, in KiB; 0 if absent.
fn status_kib(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| kib_field(&s, key))
        .unwrap_or(0)
}

fn pss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| kib_field(&s, "Pss:"))
        .unwrap_or(0)
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_ascii_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_this_process() {
        let w = Watcher::start(std::process::id(), Some(Duration::from_millis(5)), true);
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let peak = w.stop();
        assert!(peak.sampled && peak.rss_kib > 0 && peak.pss_kib > 0 && peak.root_hwm_kib > 0);
        assert!(peak.processes >= 1);
    }

    #[test]
    fn parses_kib_fields() {
        assert_eq!(
            kib_field("Name:\tx\nVmRSS:\t  1234 kB\n", "VmRSS:"),
            Some(1234)
        );
        assert_eq!(kib_field("Name:\tx\n", "VmRSS:"), None);
    }
}
