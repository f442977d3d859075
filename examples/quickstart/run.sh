#!/usr/bin/env bash
# keyform quickstart: start the emulator, plan, apply, and plan again (which reports no changes).
# Starts from a clean slate each time: the emulator keeps its keys in memory only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
port=8787
rm -rf keyform.state.json keyform.state.json.backup keyform.state.json.journal keyform.state.json.lock .secrets

keyform emulator --port "$port" >emulator.log 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true; wait "$emulator_pid" 2>/dev/null || true; rm -f emulator.log' EXIT
python3 - "$port" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("the emulator did not start on port " + sys.argv[1] + " (is the port in use?)")
PY

export QUESTRA_TOKEN=quickstart-token   # the emulator accepts any token
echo "==> keyform plan"
keyform plan
echo
echo "==> keyform apply --auto-approve"
keyform apply --auto-approve
echo
echo "==> the secrets are in .secrets/dev.env (mode $(stat -c %a .secrets/dev.env)); the state holds none:"
cut -d= -f1 .secrets/dev.env
echo
echo "==> keyform plan (again)"
keyform plan --detailed-exitcode
