//! The process's CPU time and resident memory, read from `/proc` at each scrape (Linux; on other
//! systems, or when `/proc` cannot be read, the metrics are left out).

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second of `/proc/self/stat`'s CPU times: `USER_HZ`, 100 on every Linux
/// architecture Sluice runs on (the Prometheus `procfs` library assumes the same).
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds from the text of `/proc/self/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: count fields after its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Resident memory bytes from the text of `/proc/self/status` (its `VmRSS:` line, in kB: exact
/// whatever the page size, unlike `statm`'s page count).
pub fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

/// Registers `process_cpu_seconds_total` and `process_resident_memory_bytes`.
pub fn register(r: &mut Registry) {
    if let Some(cpu) = std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(cpu_seconds) {
        r.register("process_cpu_seconds", "User and system CPU time of the runtime process", ConstCounter::new(cpu));
    }
    if let Some(rss) = std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(resident_bytes) {
        r.register(
            "process_resident_memory_bytes",
            "Resident memory of the runtime process",
            ConstGauge::new(rss as i64),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (sluice (x) rt) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 75 0 0 20 0 9 0 1234 \
                    100000 500 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(3.25));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn resident_memory_comes_from_vmrss() {
        let status = "Name:\tsluice\nVmPeak:\t  900 kB\nVmRSS:\t   1536 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes(status), Some(1536 * 1024));
        assert_eq!(resident_bytes("Name: x\n"), None);
    }

    #[test]
    fn this_process_reports_cpu_and_memory() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("linux /proc");
        assert!(cpu_seconds(&stat).is_some(), "{stat}");
        let status = std::fs::read_to_string("/proc/self/status").expect("linux /proc");
        assert!(resident_bytes(&status).is_some_and(|b| b > 0));
    }
}
