//! What one measurement yields and how repeats are summarized: wall time, the CPU time of
//! the processes involved, and the median over repeats (the median, not the mean, because
//! a neighbour's compile on this shared machine can spoil one repeat but rarely two).

use std::path::Path;

/// Wall time of one timed step plus the CPU seconds spent by the processes it involved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timed {
    pub wall: f64,
    /// User plus system seconds of the processes measured (children or daemons).
    pub cpu: f64,
    /// The system (kernel) part of `cpu`, where it was measured; 0 otherwise.
    pub system: f64,
}

impl Timed {
    /// The sum of consecutive steps, e.g. `sha1sum` then `cp`.
    pub fn plus(self, other: Timed) -> Timed {
        Timed {
            wall: self.wall + other.wall,
            cpu: self.cpu + other.cpu,
            system: self.system + other.system,
        }
    }
}

/// The median of `values`; NaN when empty. An even count averages the middle two.
pub fn median(values: &[f64]) -> f64 {
    let sorted = sorted(values);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0–100) by the nearest-rank method; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let sorted = sorted(values);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The medians of wall and CPU time over repeats.
pub fn median_timed(repeats: &[Timed]) -> Timed {
    let walls: Vec<f64> = repeats.iter().map(|timed| timed.wall).collect();
    let cpus: Vec<f64> = repeats.iter().map(|timed| timed.cpu).collect();
    let systems: Vec<f64> = repeats.iter().map(|timed| timed.system).collect();
    Timed {
        wall: median(&walls),
        cpu: median(&cpus),
        system: median(&systems),
    }
}

/// The 1-minute load average, read before each repeat so a busy neighbour shows up next
/// to the numbers it disturbed.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU seconds used so far by terminated children we waited for: (user + system, system).
pub fn children_cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    let system = seconds(usage.ru_stime);
    (seconds(usage.ru_utime) + system, system)
}

/// CPU seconds (user + system) used so far by the running process `pid`; 0 if it is gone.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; fields after its closing parenthesis are plain.
    let Some(after_name) = stat.rfind(')').map(|idx| &stat[idx + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|idx| fields.get(*idx)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no memory effects.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / ticks_per_second
}

/// Sum of [`process_cpu_seconds`] over `pids`.
pub fn processes_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|pid| process_cpu_seconds(*pid)).sum()
}

/// Decimal megabytes per second.
pub fn mb_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Values of the repeats in run order, e.g. `7.37 / 4.34 / 6.51 s`.
pub fn per_repeat(values: impl IntoIterator<Item = f64>, unit: &str) -> String {
    let texts: Vec<String> = values
        .into_iter()
        .map(|value| format!("{value:.2}"))
        .collect();
    format!("{} {unit}", texts.join(" / "))
}

/// Seconds as a `Duration`-like readable string: `812 ms` or `4.21 s`.
pub fn seconds_text(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

/// Milliseconds with one decimal below 10 ms, whole above.
pub fn ms_text(seconds: f64) -> String {
    let ms = seconds * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The size of a file in bytes, or 0.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .map(|metadata| metadata.len())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        assert!(process_cpu_seconds(std::process::id()) >= 0.0);
        assert_eq!(process_cpu_seconds(u32::MAX), 0.0);
    }
}
