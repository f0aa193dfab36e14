#!/usr/bin/env bash
# Runs `kachery demo` on scale-out engines instead of the embedded ones: the hub database on
# PostgreSQL, the channel bucket on a signature-checking S3 server (s3s-fs, the dev-only
# example `s3_test_server` of kachery-bucket) and the channel's pub-sub on a nats-server in
# operator/JWT mode (the dev-only example `nats_test_server` of kachery-pubsub), both
# started here on free loopback ports.
#
#   scripts/demo-engines.sh [extra kachery demo flags, e.g. --json --size 20000000]
#
# Environment:
#   KACHERY_DEMO_DATABASE_URL  PostgreSQL URL [default: postgres://postgres@127.0.0.1:5432/test]
#   KACHERY_DEMO_S3_ENDPOINT   use this S3-compatible endpoint (with KACHERY_DEMO_S3_BUCKET,
#                              KACHERY_DEMO_S3_ACCESS_KEY_ID, KACHERY_DEMO_S3_SECRET) instead
#                              of starting the local test server
#   KACHERY_DEMO_NATS_URL      use this NATS server (with KACHERY_DEMO_NATS_ACCOUNT and
#                              KACHERY_DEMO_NATS_SEED, an account signing seed) instead of
#                              starting a local one; needs nats-server on PATH otherwise
set -euo pipefail
cd "$(dirname "$0")/.."

export KACHERY_DEMO_DATABASE_URL="${KACHERY_DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# Where cargo puts the debug binaries (CARGO_TARGET_DIR moves them).
bin_dir="${CARGO_TARGET_DIR:-target}/debug"
work="$(mktemp -d -t kachery-demo-engines-XXXXXX)"
server_pid=""
nats_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Waits up to 10 s for a test server (PID) to print the line starting with WORD to
# BASE.out; shows BASE.err and fails if the server dies first.
wait_for_line() {
    local base=$1 word=$2 pid=$3
    for _ in $(seq 1 100); do
        if grep -q "^$word " "$base.out" 2>/dev/null; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then cat "$base.err" >&2; exit 1; fi
        sleep 0.1
    done
    echo "scripts/demo-engines.sh: $base.out never printed its $word line" >&2
    exit 1
}

if [ -z "${KACHERY_DEMO_S3_ENDPOINT:-}" ]; then
    export KACHERY_DEMO_S3_BUCKET=kachery-demo
    export KACHERY_DEMO_S3_ACCESS_KEY_ID=kachery-demo-access
    KACHERY_DEMO_S3_SECRET="demo-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    export KACHERY_DEMO_S3_SECRET
    cargo build --quiet -p kachery-bucket --features s3-test-server --example s3_test_server
    KACHERY_S3_TEST_SECRET="$KACHERY_DEMO_S3_SECRET" \
        "$bin_dir/examples/s3_test_server" "$work/s3" 0 "$KACHERY_DEMO_S3_BUCKET" \
        "$KACHERY_DEMO_S3_ACCESS_KEY_ID" >"$work/s3.out" 2>"$work/s3.err" &
    server_pid=$!
    wait_for_line "$work/s3" endpoint "$server_pid"
    KACHERY_DEMO_S3_ENDPOINT="$(sed -n 's/^endpoint //p' "$work/s3.out")"
    export KACHERY_DEMO_S3_ENDPOINT
    echo "s3 test server at $KACHERY_DEMO_S3_ENDPOINT (bucket $KACHERY_DEMO_S3_BUCKET)" >&2
fi

if [ -z "${KACHERY_DEMO_NATS_URL:-}" ]; then
    cargo build --quiet -p kachery-pubsub --features test-server --example nats_test_server
    "$bin_dir/examples/nats_test_server" >"$work/nats.out" 2>"$work/nats.err" &
    nats_pid=$!
    wait_for_line "$work/nats" seed "$nats_pid"
    KACHERY_DEMO_NATS_URL="$(sed -n 's/^url //p' "$work/nats.out")"
    KACHERY_DEMO_NATS_ACCOUNT="$(sed -n 's/^account //p' "$work/nats.out")"
    KACHERY_DEMO_NATS_SEED="$(sed -n 's/^seed //p' "$work/nats.out")"
    export KACHERY_DEMO_NATS_URL KACHERY_DEMO_NATS_ACCOUNT KACHERY_DEMO_NATS_SEED
    echo "nats-server (JWT mode) at $KACHERY_DEMO_NATS_URL" >&2
fi

cargo build --quiet -p kachery
"$bin_dir/kachery" demo "$@"
