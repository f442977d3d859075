#!/usr/bin/env bash
# Run an example end to end against the built-in emulator: start it, plan, apply, plan again
# (which reports no changes), stop it. Usage: bash examples/run.sh examples/quickstart
#
# The emulator listens on KEYFORM_EMULATOR_PORT (default 8787; 0 picks a free port). The examples'
# manifests read its URL from KEYFORM_EMULATOR_URL, which this script sets from the address the
# emulator announces, so they never talk to another server that happens to hold the port. If the
# emulator cannot start, the script stops at once and keeps emulator.log, which says why.
# Each run starts from a clean slate: the emulator keeps its keys in memory only.
set -euo pipefail
dir="$(cd "${1:?usage: examples/run.sh EXAMPLE_DIR}" && pwd)"
port="${KEYFORM_EMULATOR_PORT:-8787}"
log="$dir/emulator.log"
cd "$dir"
rm -rf keyform.state.json keyform.state.json.backup keyform.state.json.journal keyform.state.json.lock .secrets

: >"$log"  # exists before the loop below reads it (the background job may open it later)
keyform emulator --port "$port" >"$log" 2>&1 &
emulator_pid=$!
cleanup() {
  status=$?
  kill "$emulator_pid" 2>/dev/null || true
  wait "$emulator_pid" 2>/dev/null || true
  if [ "$status" -eq 0 ]; then rm -f "$log"; else echo "(the emulator's log is kept in $log)" >&2; fi
}
trap cleanup EXIT

# Wait for the emulator's own announcement ("keyform emulator listening on URL"): a port that
# answers is not enough, since another server may hold it.
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^keyform emulator listening on //p' "$log")"
  [ -n "$url" ] && break
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "examples/run.sh: the emulator did not start on port $port:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.05
done
if [ -z "$url" ]; then
  echo "examples/run.sh: the emulator did not announce itself within 15 s on port $port" >&2
  exit 1
fi
export KEYFORM_EMULATOR_URL="$url"
echo "==> emulator at $KEYFORM_EMULATOR_URL"

export QUESTRA_TOKEN="${QUESTRA_TOKEN:-example-questra-token}"   # the emulator accepts any token
export TEXTQL_TOKEN="${TEXTQL_TOKEN:-example-textql-token}"
echo "==> keyform plan"
keyform plan
echo
echo "==> keyform apply --auto-approve"
keyform apply --auto-approve
echo
for f in .secrets/*; do
  echo "==> $f (mode $(stat -c %a "$f")) holds: $(cut -d= -f1 "$f" | tr '\n' ' ')"
done
echo
echo "==> keyform plan (again)"
keyform plan --detailed-exitcode
