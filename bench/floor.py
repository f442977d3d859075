"""The physical limit of an apply here: keyform's create calls from the lightest client there is.

    python bench/floor.py URL CREATES ORGS PARALLELISM

Sends exactly the calls an `apply` of CREATES Questra keys over ORGS orgs sends (`POST /api-keys`
with the same headers and bodies, `PARALLELISM` at once, keep-alive connections) with the standard
library's `http.client`, and nothing else: no manifests, no plan, no journal, no sink, no state.
Its wall time (fork to exit, like keyform's) is what this machine, this Python and this emulator
allow, so `bench/run.py` reports keyform's apply against it as well as against the ideal
N × RTT ÷ parallelism. Exits 1 if any call does not answer 201.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
from urllib.parse import urlsplit

from workload import TOKENS, keys_per_org, org_name, questra_key_name  # bench/ is on sys.path


def main(argv: list[str]) -> int:
    url, creates, orgs, parallelism = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    target = urlsplit(url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    calls = [(o, i) for o, count in enumerate(keys_per_org(creates, orgs)) for i in range(count)]
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        connections: dict[int, http.client.HTTPConnection] = {}
        while True:
            with lock:
                if not calls or failures:
                    break
                o, i = calls.pop()
            conn = connections.get(o)
            if conn is None:
                conn = connections[o] = http.client.HTTPConnection(host, port, timeout=30)
            body = json.dumps({"name": questra_key_name(o, i), "expires_at": "2030-01-01T00:00:00Z"})
            conn.request("POST", "/api-keys", body=body, headers={
                "Authorization": f"Bearer {TOKENS['QUESTRA_TOKEN']}", "Accept": "application/json",
                "Content-Type": "application/json", "X-Org-Id": org_name(o), "User-Agent": "keyform-bench-floor"})
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                with lock:
                    failures.append(f"{org_name(o)} {i}: HTTP {response.status}")
        for conn in connections.values():
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(parallelism)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print(f"floor: {len(failures)} calls failed, first: {failures[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
