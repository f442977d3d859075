#!/usr/bin/env bash
# Run an example end to end against the built-in emulator: start it, plan, apply, plan again
# (which reports no changes), stop it. Usage: bash examples/run.sh examples/quickstart
# Each run starts from a clean slate: the emulator keeps its keys in memory only.
set -euo pipefail
dir="$(cd "${1:?usage: examples/run.sh EXAMPLE_DIR}" && pwd)"
port="${KEYFORM_EMULATOR_PORT:-8787}"
cd "$dir"
rm -rf keyform.state.json keyform.state.json.backup keyform.state.json.journal keyform.state.json.lock .secrets

keyform emulator --port "$port" >"$dir/emulator.log" 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; rm -f "$dir/emulator.log"' EXIT
python3 - "$port" "$emulator_pid" <<'PY'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"the emulator exited; is port {port} in use? (see emulator.log)")
        time.sleep(0.05)
sys.exit(f"the emulator did not start on port {port}")
PY

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
