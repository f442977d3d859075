"""The parse floor of a no-change plan: the least work any plan of these manifests must do.

    python bench/parsefloor.py MANIFEST_DIR STATE_FILE URL ORGS

What it times, and nothing else: libyaml's event stream over the manifest files (`yaml.parse` with
`CSafeLoader`: no nodes, no Python objects per value), `json.loads` of the state file and of every
list reply (fetched once from the emulator before timing), and one HMAC-SHA256 per write-only
input the plan fingerprints (the benchmark's TextQL keys each have one). Prints one JSON object:
`wall` and `cpu` seconds of that work, and what it covered. `bench/run.py` reports the no-change
plan as a ratio to it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from workload import TOKENS, org_name  # bench/ is on sys.path


def _get(url: str, headers: dict[str, str], body: bytes | None = None) -> bytes:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=120) as resp:
        return bytes(resp.read())


def main(argv: list[str]) -> int:
    mdir, state_file, url, orgs = Path(argv[0]), Path(argv[1]), argv[2], int(argv[3])
    texts = [p.read_bytes() for p in sorted(mdir.glob("*.yaml"))]
    state_bytes = state_file.read_bytes()
    replies = [_get(f"{url}/api-keys", {"Authorization": f"Bearer {TOKENS['QUESTRA_TOKEN']}",
                                        "X-Org-Id": org_name(o)}) for o in range(orgs)]
    replies.append(_get(f"{url}/v1/api-keys", {"Authorization": f"Bearer {TOKENS['TEXTQL_TOKEN']}",
                                               "Connect-Protocol-Version": "1",
                                               "Content-Type": "application/json"}, b"{}"))
    salt = bytes.fromhex(json.loads(state_bytes)["fingerprint_salt"])
    inputs = sum(text.count(b"auth_value:") for text in texts)
    secret = TOKENS["BENCH_TEXTQL_AUTH"].encode()

    wall, cpu = time.perf_counter(), time.process_time()
    events = 0
    for text in texts:
        for _ in yaml.parse(text, Loader=yaml.CSafeLoader):
            events += 1
    state = json.loads(state_bytes)
    listed = sum(len(r if isinstance(r, list) else r.get("apiAccessKeys", [])) for r in map(json.loads, replies))
    for _ in range(inputs):
        hmac.new(salt, secret, hashlib.sha256).hexdigest()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "yaml_bytes": sum(map(len, texts)), "yaml_events": events,
                      "state_keys": len(state["keys"]), "listed": listed, "hmacs": inputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
