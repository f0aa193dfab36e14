//! The Markdown written to docs/BENCHMARKS.md: machine facts, one table row per
//! measurement, then the details and evidence behind each row's bottleneck.

use std::fmt::Write as _;
use std::process::Command;

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// "1", "1b", "2", …
    pub id: String,
    pub what: String,
    pub kachery: String,
    pub baseline: String,
    /// kachery time ÷ baseline time (or baseline rate ÷ kachery rate): above 1 is slower.
    pub ratio: f64,
    pub bottleneck: String,
    /// The 1-minute load average before each repeat.
    pub loads: Vec<f64>,
}

/// Everything the document says.
pub struct Report {
    pub machine: Vec<(String, String)>,
    pub rows: Vec<Row>,
    /// Per-row paragraphs: breakdowns, CPU seconds, how the baseline was built.
    pub details: Vec<(String, Vec<String>)>,
    pub run_seconds: f64,
    pub repeats: usize,
    /// Row groups that failed; their error is in `details`.
    pub failures: usize,
}

/// Facts about this machine and toolchain, in the order they are printed.
pub fn machine_facts(work: &std::path::Path) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown".to_owned(), |model| model.trim().to_owned());
    let has_sha_ni = cpuinfo.lines().any(|line| {
        line.starts_with("flags") && line.split_whitespace().any(|flag| flag == "sha_ni")
    });
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("MemTotal"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });

    let commit = std::env::var("KACHERY_BENCH_COMMIT").unwrap_or_else(|_| "unknown".into());
    vec![
        ("kachery commit measured".into(), commit),
        (
            "date (UTC)".into(),
            command_line("date", &["-u", "+%Y-%m-%d %H:%M"]),
        ),
        ("nproc".into(), command_line("nproc", &[])),
        ("CPU model (/proc/cpuinfo)".into(), cpu_model),
        (
            "SHA extensions (sha_ni)".into(),
            if has_sha_ni { "yes" } else { "no" }.into(),
        ),
        ("memory".into(), memory),
        ("kernel".into(), command_line("uname", &["-r"])),
        ("filesystem of the scratch directory".into(), mount_of(work)),
        ("rustc".into(), command_line("rustc", &["--version"])),
        (
            "curl".into(),
            first_words(&command_line("curl", &["--version"]), 2),
        ),
        ("sha1sum".into(), command_line("sha1sum", &["--version"])),
    ]
}

/// Type and options of the filesystem holding `path` (from /proc/mounts): `discard`, for
/// one, makes deletions cost TRIMs that later writes may wait behind.
fn mount_of(path: &std::path::Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (mount_point, kind, options) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), format!("{kind} ({options})")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or("unknown".into(), |(_, text)| text)
}

/// The first line a command prints, or "unknown".
fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

fn first_words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(HEADER);

        out.push_str("\n## Machine\n\n| | |\n|---|---|\n");
        for (name, value) in &self.machine {
            let _ = writeln!(out, "| {name} | {} |", cell(value));
        }
        let _ = writeln!(
            out,
            "\nWhole run: {:.1} min, including setup. Load average: the 1-minute value from \
             /proc/loadavg before each of the repeats, in order.",
            self.run_seconds / 60.0
        );

        let _ = write!(
            out,
            "\n## Results\n\nMedian of {} repeats (for latencies: the median of each repeat's \
             percentile). Ratio = kachery time ÷ baseline time (for rates: baseline rate ÷ \
             kachery rate), so 2.0× means kachery takes twice as long. MB = 10⁶ bytes.\n\n\
             | # | What was measured | kachery | Baseline | Ratio | Bottleneck \
             | Load avg before |\n|---|---|---|---|---|---|---|\n",
            self.repeats
        );
        for row in &self.rows {
            let loads: Vec<String> = row.loads.iter().map(|load| format!("{load:.2}")).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.2}× | {} | {} |",
                row.id,
                cell(&row.what),
                cell(&row.kachery),
                cell(&row.baseline),
                row.ratio,
                cell(&row.bottleneck),
                loads.join(" / "),
            );
        }

        out.push_str("\n## Details and evidence\n");
        for (title, paragraphs) in &self.details {
            let _ = writeln!(out, "\n### {title}\n");
            for paragraph in paragraphs {
                let _ = writeln!(out, "- {paragraph}");
            }
        }
        out.push_str(FOOTER);
        out
    }
}

/// Table cells may not hold a bare `|`.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

const HEADER: &str = "\
# Benchmarks

kachery measured side by side with plain tools on the same machine, in the same run. This \
file is generated by `bench/run.sh` (see the end); edit the generator in \
`crates/kachery-bench`, not this file.

Everything runs on loopback: a `kachery hub serve` process (SQLite, embedded broker and \
bucket, dev login) and `kachery node start` daemons, each in its own `KACHERY_HOME`, all the \
release build. Baselines reach the same hub and the same embedded bucket with `curl`, using \
presigned URLs the hub issued to a registered node identity held by the benchmark.
";

const FOOTER: &str = "
## Rerunning

    bench/run.sh                 # release build, all rows, rewrites docs/BENCHMARKS.md
    BENCH_SIZE=200000000 bench/run.sh   # smaller file for a quick look (the table says so)
    BENCH_ROWS=4,5 bench/run.sh  # only some rows
    BENCH_REPEATS=1 bench/run.sh # one repeat instead of the median of 3

Big files live in a temporary directory under /tmp that is deleted at the end. The machine \
is shared, so compare the load-average column before trusting a difference.
";
