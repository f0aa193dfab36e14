//! The curl baselines: the same objects moved through the same embedded bucket with
//! presigned URLs that a registered node identity asked the hub for, four requests at a
//! time (kachery's default `parallel_chunks`), each download hashed as it is written.
//!
//! The timed span includes the node-API calls for the URLs, because kachery's own
//! transfers pay for theirs too.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use kachery_protocol::bucket_key::BucketKey;
use kachery_protocol::node_api::UploadItem;
use kachery_protocol::{ChannelName, Sha1Hash};

use crate::cluster::Identity;
use crate::measure::{Timed, process_cpu_seconds};
use crate::shell::{bash, run_timed};

/// One object of the bucket and where its bytes are on disk.
#[derive(Debug, Clone)]
pub struct Object {
    pub sha1: Sha1Hash,
    pub size: u64,
    pub file: PathBuf,
    /// Name of the downloaded copy: `c000`, `c001`, … for the chunks of a file in order
    /// (they are concatenated for the whole-file check), anything else otherwise.
    pub name: String,
}

/// Requests in flight at once, as kachery's default `parallel_chunks`.
const PARALLEL: &str = "4";

/// PUTs every line of plan `$1` (URL FILE NAME:VALUE…). `Expect:` (empty) stops curl from
/// waiting for a `100 Continue` before large bodies; every other header is exactly what
/// the hub presigned (content-type and content-length, plus `if-none-match` on S3).
const PUT_SCRIPT: &str = r#"
xargs -P "$2" -L 1 -a "$1" sh -c '
  url=$1 file=$2; shift 2
  for header do set -- "$@" -H "$header"; shift; done
  curl -sS --fail -o /dev/null -H "Expect:" "$@" -T "$file" "$url"' put
"#;

/// GETs every line of plan `$1` (URL OUTPUT) into OUTPUT, hashing it on the way to
/// OUTPUT.sha1; then prints the SHA-1 of the chunk copies `$3/c000…` concatenated in
/// order, the check kachery makes on an assembled file.
const GET_SCRIPT: &str = r#"
xargs -P "$2" -L 1 -a "$1" sh -c '
  curl -sS --fail "$1" | tee "$2" | sha1sum > "$2.sha1"' get
cat "$3"/c[0-9][0-9][0-9] | sha1sum
"#;

/// One baseline transfer: the whole (wall time; CPU of curl, sha1sum, tee and the hub) and
/// the wall time of each phase, URL calls included.
#[derive(Debug, Clone, Copy)]
pub struct CurlRun {
    pub total: Timed,
    pub put_seconds: f64,
    pub get_seconds: f64,
}

/// Uploads `objects` to `channel` (when `put`), downloads them into `out_dir` and checks
/// every hash afterwards (untimed). `whole`, when given, is the SHA-1 the chunk copies
/// must make together.
pub async fn transfer(
    node: &Identity,
    channel: &ChannelName,
    objects: &[Object],
    put: bool,
    out_dir: &Path,
    whole: Option<Sha1Hash>,
    hub_pid: u32,
) -> anyhow::Result<CurlRun> {
    crate::shell::remove(out_dir)?;
    std::fs::create_dir_all(out_dir)?;
    let put_plan = out_dir.join("put.plan");
    let get_plan = out_dir.join("get.plan");
    let output = |idx: usize| out_dir.join(&objects[idx].name);
    crate::shell::settle_writeback()?;

    let hub_cpu_before = process_cpu_seconds(hub_pid);
    let mut tools_cpu = 0.0;
    let started = Instant::now();
    if put {
        let items: Vec<UploadItem> = objects
            .iter()
            .map(|object| UploadItem::File {
                sha1: object.sha1,
                size: object.size,
            })
            .collect();
        let uploads = node
            .api
            .upload_urls(channel, items)
            .await
            .context("createUploadUrls")?;
        ensure!(
            uploads.uploads.len() == objects.len(),
            "the hub presigned too few uploads"
        );
        let mut plan = String::new();
        for (object, upload) in objects.iter().zip(&uploads.uploads) {
            plan.push_str(&format!("{} {}", upload.url, object.file.display()));
            for (name, value) in &upload.headers {
                ensure!(
                    !value.contains(char::is_whitespace),
                    "presigned header {name} has a space, which the plan cannot carry"
                );
                plan.push_str(&format!(" {name}:{value}"));
            }
            plan.push('\n');
        }
        std::fs::File::create(&put_plan)?.write_all(plan.as_bytes())?;
        let (put_timed, _) = run_timed(&mut bash(PUT_SCRIPT, &[&put_plan, &PARALLEL]))?;
        tools_cpu += put_timed.cpu;
    }

    let put_seconds = started.elapsed().as_secs_f64();

    let keys: Vec<BucketKey> = objects
        .iter()
        .map(|object| BucketKey::blob(channel, &object.sha1))
        .collect();
    let downloads = node
        .api
        .download_urls(channel, keys.clone())
        .await
        .context("createDownloadUrls")?;
    let by_key: HashMap<&str, &str> = downloads
        .downloads
        .iter()
        .map(|urls| (urls.key.as_str(), urls.get.url.as_str()))
        .collect();
    let mut plan = String::new();
    for (idx, key) in keys.iter().enumerate() {
        let Some(url) = by_key.get(key.as_str()) else {
            bail!("no download URL for {key:?}")
        };
        plan.push_str(&format!("{url} {}\n", output(idx).display()));
    }
    std::fs::File::create(&get_plan)?.write_all(plan.as_bytes())?;
    let (get_timed, whole_line) =
        run_timed(&mut bash(GET_SCRIPT, &[&get_plan, &PARALLEL, &out_dir]))?;
    tools_cpu += get_timed.cpu;
    let wall = started.elapsed().as_secs_f64();
    let hub_cpu = process_cpu_seconds(hub_pid) - hub_cpu_before;

    // Untimed: every object arrived intact, so the baseline did the whole job.
    for (idx, object) in objects.iter().enumerate() {
        let sha1_file = PathBuf::from(format!("{}.sha1", output(idx).display()));
        let line = std::fs::read_to_string(&sha1_file)?;
        ensure!(
            line.starts_with(&object.sha1.to_hex()),
            "object {idx} arrived corrupt"
        );
    }
    if let Some(whole) = whole {
        ensure!(
            whole_line.starts_with(&whole.to_hex()),
            "the chunks do not make the file"
        );
    }
    crate::shell::remove(out_dir)?;
    Ok(CurlRun {
        total: Timed {
            wall,
            cpu: tools_cpu + hub_cpu,
            system: 0.0,
        },
        put_seconds,
        get_seconds: wall - put_seconds,
    })
}
