#!/bin/sh
# A kachery task worker in POSIX sh, curl and python3 (for JSON), serving demo functions
# to the node daemon of this machine. The protocol is in docs/TASKS.md.
#
#   demo.add     pure-calculation  {"a": 1, "b": 2, "seconds": 0} -> {"sum": 3}
#   demo.clock   query             {} -> {"now": <unix seconds>}; fails while the file
#                                  named by $TASK_WORKER_CLOCK_BROKEN exists (for tests)
#   demo.note    action            {"text": "..."}: appends the text to $TASK_WORKER_LOG
#   demo.fail    pure-calculation  {"message": "..."}: always fails with that message
#
# Environment: KACHERY_HOME or KACHERY_NODE_DIR find the daemon (as for the CLI);
# TASK_WORKER_LOG (default /dev/null) gets one line per run, so runs can be counted.
set -eu

node_dir=${KACHERY_NODE_DIR:-${KACHERY_HOME:-$HOME/.kachery}/node}
log=${TASK_WORKER_LOG:-/dev/null}
functions='[
  {"functionId": "demo.add", "functionType": "pure-calculation"},
  {"functionId": "demo.clock", "functionType": "query"},
  {"functionId": "demo.note", "functionType": "action"},
  {"functionId": "demo.fail", "functionType": "pure-calculation"}
]'

# The daemon's port and client token: daemon.json is rewritten at each start, so read
# both again whenever a call fails.
connect() {
    token=$(cat "$node_dir/client-token")
    port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["port"])' \
        "$node_dir/daemon.json")
    url="http://127.0.0.1:$port"
}

# Reads a poll answer on stdin; prints the job id and the report JSON on two lines, or
# nothing when the poll brought no job.
run_job='
import json, os, sys, time
job = json.load(sys.stdin).get("job")
if job is None:
    sys.exit(0)
fn, kw, log = job["functionId"], job["kwargs"], sys.argv[1]
def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")
try:
    if fn == "demo.add":
        time.sleep(float(kw.get("seconds", 0)))
        report = {"state": "finished", "result": {"sum": kw["a"] + kw["b"]}}
    elif fn == "demo.clock":
        if os.path.exists(os.environ.get("TASK_WORKER_CLOCK_BROKEN") or "/nonexistent/"):
            raise RuntimeError("the clock is broken")
        report = {"state": "finished", "result": {"now": time.time()}}
    elif fn == "demo.note":
        report = {"state": "finished"}
    elif fn == "demo.fail":
        report = {"state": "error", "message": kw.get("message", "demo.fail always fails")}
    else:
        report = {"state": "error", "message": "this worker does not know " + fn}
except Exception as error:
    report = {"state": "error", "message": "%s: %s" % (type(error).__name__, error)}
note("%s %s" % (fn, json.dumps(kw, sort_keys=True)))
print(job["jobId"])
print(json.dumps(report))
'

connect
while :; do
    answer=$(curl -sS --fail -X POST "$url/v1/tasks/backends/poll" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"functions\": $functions, \"waitMs\": 20000}") || {
        sleep 1
        connect || true
        continue
    }
    out=$(printf '%s' "$answer" | python3 -c "$run_job" "$log") || {
        echo "task-worker: could not read the daemon's answer: $answer" >&2
        continue
    }
    [ -n "$out" ] || continue
    job_id=$(printf '%s\n' "$out" | sed -n 1p)
    report=$(printf '%s\n' "$out" | sed -n 2p)
    curl -sS --fail -X POST "$url/v1/tasks/$job_id/status" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "$report" >/dev/null || echo "task-worker: report on job $job_id failed" >&2
done
