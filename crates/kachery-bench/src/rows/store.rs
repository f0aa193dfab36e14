//! Row 1: `kachery store` of the big file into a fresh `KACHERY_HOME`, against
//! `sha1sum FILE` then `cp FILE DEST` on the same disk.
//!
//! Nothing is dropped from the page cache: the input stays cached for both. Before each
//! timed step `sync` flushes what the previous step left dirty, so neither side pays for
//! the other's writeback. Copies are deleted only when the row is over: on a filesystem
//! mounted with `discard`, deleting a GiB issues TRIMs that a following fsync can wait
//! behind. kachery syncs its copy before it returns and `cp` does not, so row 1b adds
//! `sync DEST` to the baseline, and row 1c copies with `dd bs=4M conv=fsync`: kachery's own
//! I/O pattern (4 MiB reads and writes, then fsync) without any hashing.
//!
//! For the bottleneck column the same store also runs into tmpfs (no disk at all), and
//! the `sha1` crate's speed is measured in memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha1::Digest;

use crate::measure::{
    Timed, load_average, mb_per_second, median, median_timed, per_repeat, seconds_text,
};
use crate::report::{Report, Row};
use crate::rows::Context;
use crate::shell::{remove, run_timed, settle_writeback};

/// Where the tmpfs runs of the store go, when the machine has it.
const TMPFS: &str = "/dev/shm";

/// One repeat of the baseline, step by step.
#[derive(Debug, Clone, Copy)]
struct BaselineSteps {
    sha1sum: Timed,
    cp: Timed,
    sync_dest: Timed,
    dd_fsync: Timed,
}

impl BaselineSteps {
    fn plain(&self) -> Timed {
        self.sha1sum.plus(self.cp)
    }

    fn synced(&self) -> Timed {
        self.plain().plus(self.sync_dest)
    }
}

pub fn run(ctx: &Context, report: &mut Report) -> anyhow::Result<()> {
    let dir = ctx.work.join("row1");
    std::fs::create_dir_all(&dir)?;

    let (mut loads, mut kachery_runs, mut baseline_runs) = (Vec::new(), Vec::new(), Vec::new());
    for repeat in 0..ctx.repeats {
        loads.push(load_average());
        let home = dir.join(format!("home-{repeat}"));
        let dest = dir.join(format!("copy-{repeat}.bin"));
        let dd_dest = dir.join(format!("dd-{repeat}.bin"));
        // Alternate who goes first, so neither side always follows the other's writes.
        if repeat.is_multiple_of(2) {
            baseline_runs.push(baseline(ctx, &dest, &dd_dest)?);
            kachery_runs.push(kachery_store(ctx, &home)?);
        } else {
            kachery_runs.push(kachery_store(ctx, &home)?);
            baseline_runs.push(baseline(ctx, &dest, &dd_dest)?);
        }
        let (kachery, baseline) = (&kachery_runs[repeat], &baseline_runs[repeat]);
        eprintln!(
            "  repeat {repeat}: kachery {:.2} s, sha1sum + cp {:.2} s",
            kachery.wall,
            baseline.plain().wall
        );
    }
    remove(&dir)?;
    let tmpfs_runs = tmpfs_stores(ctx)?;
    let sha1_crate_mb_s = sha1_crate_rate();

    let kachery = median_timed(&kachery_runs);
    let plain = median_timed(
        &baseline_runs
            .iter()
            .map(BaselineSteps::plain)
            .collect::<Vec<_>>(),
    );
    let synced = median_timed(
        &baseline_runs
            .iter()
            .map(BaselineSteps::synced)
            .collect::<Vec<_>>(),
    );
    let sha1sum = median_timed(&baseline_runs.iter().map(|s| s.sha1sum).collect::<Vec<_>>());
    let cp = median_timed(&baseline_runs.iter().map(|s| s.cp).collect::<Vec<_>>());
    let sync_dest = median(
        &baseline_runs
            .iter()
            .map(|s| s.sync_dest.wall)
            .collect::<Vec<_>>(),
    );
    let dd_fsync = median_timed(&baseline_runs.iter().map(|s| s.dd_fsync).collect::<Vec<_>>());
    let tmpfs = (!tmpfs_runs.is_empty()).then(|| median_timed(&tmpfs_runs));

    // The store hashes every byte twice (whole file and its chunk) on one thread while a
    // second thread copies; so the floor is two SHA-1 passes at the crate's speed.
    let two_pass_floor = 2.0 * ctx.size as f64 / 1e6 / sha1_crate_mb_s;
    let bottleneck = store_bottleneck(kachery, tmpfs, dd_fsync, two_pass_floor);
    let size_label = size_label(ctx.size);
    let rate = |timed: Timed| {
        let mb_s = mb_per_second(ctx.size, timed.wall);
        format!("{} ({mb_s:.0} MB/s)", seconds_text(timed.wall))
    };
    report.rows.push(Row {
        id: "1".into(),
        what: format!(
            "`kachery store` of a {size_label} file, fresh KACHERY_HOME, input in page cache"
        ),
        kachery: rate(kachery),
        baseline: format!("`sha1sum F` + `cp F DEST`: {}", rate(plain)),
        ratio: kachery.wall / plain.wall,
        bottleneck: bottleneck.clone(),
        loads: loads.clone(),
    });
    report.rows.push(Row {
        id: "1b".into(),
        what: "same, baseline also syncs its copy (kachery fsyncs before returning)".into(),
        kachery: rate(kachery),
        baseline: format!("`sha1sum` + `cp` + `sync DEST`: {}", rate(synced)),
        ratio: kachery.wall / synced.wall,
        bottleneck: bottleneck.clone(),
        loads: loads.clone(),
    });
    report.rows.push(Row {
        id: "1c".into(),
        what: "same, baseline copies with kachery's I/O pattern and no hashing".into(),
        kachery: rate(kachery),
        baseline: format!("`dd bs=4M conv=fsync`: {}", rate(dd_fsync)),
        ratio: kachery.wall / dd_fsync.wall,
        bottleneck,
        loads,
    });

    let tmpfs_text = match tmpfs {
        Some(tmpfs) => format!(
            "The same store with KACHERY_HOME on tmpfs ({TMPFS}, no disk): {} wall, {:.2} s \
             CPU (median of {}).",
            seconds_text(tmpfs.wall),
            tmpfs.cpu,
            tmpfs_runs.len()
        ),
        None => format!("No tmpfs at {TMPFS} with room for the file: the no-disk run was skipped."),
    };
    report.details.push((
        "Row 1: store".into(),
        vec![
            format!(
                "kachery: {} wall, {:.2} s CPU ({:.2} s of it in the kernel) for the CLI \
                 process; the input is read once, copied by one thread and hashed by another \
                 (whole-file SHA-1 and 20 MB chunk SHA-1s, both on the hashing thread), then \
                 fsynced and renamed into the store.",
                seconds_text(kachery.wall),
                kachery.cpu,
                kachery.system
            ),
            tmpfs_text,
            format!(
                "Per repeat, in run order (baseline first in repeats 1 and 3): kachery {}; \
                 `sha1sum` + `cp` {}; `dd bs=4M conv=fsync` {}. The disk's speed swings \
                 between runs on this shared VM, which is why 1c should be read next to the \
                 tmpfs figure.",
                per_repeat(kachery_runs.iter().map(|t| t.wall), "s"),
                per_repeat(baseline_runs.iter().map(|s| s.plain().wall), "s"),
                per_repeat(baseline_runs.iter().map(|s| s.dd_fsync.wall), "s")
            ),
            format!(
                "Baseline steps (medians): `sha1sum` {} ({:.0} MB/s, {:.2} s CPU), `cp` {} \
                 ({:.2} s CPU), `sync DEST` {}; `dd bs=4M conv=fsync` {} ({:.2} s CPU, {:.2} \
                 s of it in the kernel).",
                seconds_text(sha1sum.wall),
                mb_per_second(ctx.size, sha1sum.wall),
                sha1sum.cpu,
                seconds_text(cp.wall),
                cp.cpu,
                seconds_text(sync_dest),
                seconds_text(dd_fsync.wall),
                dd_fsync.cpu,
                dd_fsync.system
            ),
            format!(
                "Reference: the `sha1` crate kachery uses hashes {sha1_crate_mb_s:.0} MB/s on \
                 one core here (best of 3 passes over 256 MiB in memory), so two passes over \
                 {size_label} need at least {} on the hashing thread.",
                seconds_text(two_pass_floor)
            ),
            "Page cache: the input was written just before and is never dropped, so both \
             sides read it from memory; the copies are new pages (writeback starts during \
             the step). `sync` runs untimed before every timed step, and copies are deleted \
             only after the last repeat."
                .into(),
        ],
    ));
    Ok(())
}

/// Names the bottleneck from the evidence: disk when the tmpfs store is much faster,
/// else SHA-1 when two passes take most of the time, else the copy itself.
fn store_bottleneck(
    kachery: Timed,
    tmpfs: Option<Timed>,
    dd_fsync: Timed,
    two_pass_floor: f64,
) -> String {
    match tmpfs {
        Some(tmpfs) if tmpfs.wall < 0.6 * kachery.wall => format!(
            "disk: write() + fsync of the copy ({:.1} s in the kernel); `dd bs=4M \
             conv=fsync` alone takes {}, the same store into tmpfs {} (≥ {} of it two \
             SHA-1 passes)",
            kachery.system,
            seconds_text(dd_fsync.wall),
            seconds_text(tmpfs.wall),
            seconds_text(two_pass_floor)
        ),
        _ if two_pass_floor > 0.6 * kachery.wall => format!(
            "SHA-1: two passes (whole + chunk) on one thread need {} of the {}",
            seconds_text(two_pass_floor),
            seconds_text(kachery.wall)
        ),
        _ => format!(
            "CPU of the copy (read + write syscalls) next to {} of hashing",
            seconds_text(two_pass_floor)
        ),
    }
}

fn baseline(ctx: &Context, dest: &Path, dd_dest: &Path) -> anyhow::Result<BaselineSteps> {
    settle_writeback()?;
    let (sha1sum, _) = run_timed(Command::new("sha1sum").arg(&ctx.input))?;
    let (cp, _) = run_timed(Command::new("cp").arg(&ctx.input).arg(dest))?;
    let (sync_dest, _) = run_timed(Command::new("sync").arg(dest))?;

    settle_writeback()?;
    let mut dd = Command::new("dd");
    dd.arg(format!("if={}", ctx.input.display()))
        .arg(format!("of={}", dd_dest.display()))
        .args(["bs=4M", "conv=fsync", "status=none"]);
    let (dd_fsync, _) = run_timed(&mut dd)?;
    Ok(BaselineSteps {
        sha1sum,
        cp,
        sync_dest,
        dd_fsync,
    })
}

fn kachery_store(ctx: &Context, home: &Path) -> anyhow::Result<Timed> {
    std::fs::create_dir_all(home)?;
    settle_writeback()?;
    let (timed, stdout) = run_timed(
        Command::new(&ctx.kachery)
            .arg("store")
            .arg(&ctx.input)
            .env("KACHERY_HOME", home)
            .env_remove("RUST_LOG"),
    )?;
    anyhow::ensure!(
        stdout.starts_with("sha1://"),
        "kachery store printed {stdout:?}"
    );
    Ok(timed)
}

/// The same store into fresh homes on tmpfs, one repeat at a time (each removed before
/// the next, memory being what it costs); empty when there is no room.
fn tmpfs_stores(ctx: &Context) -> anyhow::Result<Vec<Timed>> {
    if !has_room(Path::new(TMPFS), 2 * ctx.size) {
        return Ok(Vec::new());
    }
    let mut runs = Vec::with_capacity(ctx.repeats);
    for _ in 0..ctx.repeats {
        let home = PathBuf::from(TMPFS).join(format!("kachery-bench-{}", std::process::id()));
        let result = kachery_store(ctx, &home);
        remove(&home)?;
        runs.push(result?);
    }
    Ok(runs)
}

/// Whether the filesystem at `dir` has `bytes` free, per `df`.
fn has_room(dir: &Path, bytes: u64) -> bool {
    let Ok(output) = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
    else {
        return false;
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse::<u64>().ok())
        .is_some_and(|avail| avail > bytes)
}

/// MB/s of the `sha1` crate on one core: the best of 3 passes over 256 MiB in memory, the
/// least disturbed by whatever else runs on the machine.
fn sha1_crate_rate() -> f64 {
    let buffer = vec![0x5au8; 256 << 20];
    let mut best = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        let digest = sha1::Sha1::digest(&buffer);
        let seconds = started.elapsed().as_secs_f64();
        std::hint::black_box(digest);
        best = best.max(mb_per_second(buffer.len() as u64, seconds));
    }
    best
}

/// "1 GiB" for the default size, else decimal megabytes.
pub fn size_label(size: u64) -> String {
    if size == 1 << 30 {
        "1 GiB".into()
    } else {
        format!("{:.0} MB", size as f64 / 1e6)
    }
}
