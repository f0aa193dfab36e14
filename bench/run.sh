#!/usr/bin/env bash
# Benchmarks kachery side by side with plain tools on this machine and rewrites
# docs/BENCHMARKS.md. Takes about 9 minutes on 2 cores after the build, and up to 10 GiB
# of /tmp at the peak (row 1 keeps its 1 GiB copies until its last repeat).
#
#   bench/run.sh                         # everything, 1 GiB file, 3 repeats
#   BENCH_ROWS=4,5 bench/run.sh          # only some rows (1 store, 2+3 transfer, 2s+3s on S3,
#                                        # 4 node API, 5 latency, 6 tasks, 7 feeds)
#   BENCH_SIZE=200000000 bench/run.sh    # smaller big file, for a quick look
#   BENCH_REPEATS=1 bench/run.sh         # one repeat instead of the median of 3
#   BENCH_OUT=/tmp/b.md bench/run.sh     # write elsewhere
#
# The measuring is done by crates/kachery-bench (it calls the hub's APIs and the pub-sub
# client as a node would); this script only builds, makes a scratch directory and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo sha1sum curl xargs split sync; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is required" >&2; exit 1; }
done

# Release builds of both binaries: the numbers are only meaningful for optimized code.
# --locked, so a benchmark never silently runs against different dependency versions.
cargo build --release --locked -p kachery -p kachery-bench
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"

# Which code is measured: the commit, and whether tracked files differ from it. Read-only
# (GIT_OPTIONAL_LOCKS=0 keeps git status from refreshing the index).
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(GIT_OPTIONAL_LOCKS=0 git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit with uncommitted changes"
fi
export KACHERY_BENCH_COMMIT="${KACHERY_BENCH_COMMIT:-$commit}"

# The 1 GiB input, its copies, the hub's bucket and every node store go here; /tmp so a
# crash never leaves gigabytes in the repository. Removed on any exit.
work="$(mktemp -d /tmp/kachery-bench.XXXXXX)"
# The hub and node daemons are children of kachery-bench and die with it (it kills them
# when done and asks the kernel to signal them if it dies first).
trap 'rm -rf -- "$work"' EXIT

"$target_dir/release/kachery-bench" \
  --kachery "$target_dir/release/kachery" \
  --work "$work" \
  --out "${BENCH_OUT:-docs/BENCHMARKS.md}" \
  --size "${BENCH_SIZE:-1073741824}" \
  --repeats "${BENCH_REPEATS:-3}" \
  --rows "${BENCH_ROWS:-1,2,3,2s,4,5,6,7}"
