"""`ServerFaults` for keyform's built-in emulator (Questra and TextQL), through its control API.

The emulator injects faults by rate; a rate of 1 makes them certain. It does not paginate (neither
API has pagination), so `set_page_size` answers False and the kit reports that test as skipped.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class EmulatorFaults:
    def __init__(self, base_url: str) -> None:
        self.control = base_url.rstrip("/") + "/_emulator"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.control + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
            return json.loads(response.read() or b"null")

    def inject(self, status: int) -> None:
        if status == 429:
            self._post("/faults", {"rate_limit_rate": 1.0, "retry_after": 0})
        elif status == 503:
            self._post("/faults", {"error_rate": 1.0})
        else:
            raise ValueError(f"the emulator injects only 429 and 503, not {status}")

    def drop_after_commit(self) -> None:
        self._post("/faults", {"drop_after_commit_rate": 1.0})

    def clear(self) -> None:
        self._post("/faults", {"rate_limit_rate": 0.0, "error_rate": 0.0, "drop_after_commit_rate": 0.0})

    def set_page_size(self, n: int) -> bool:
        return False

    def injectable(self) -> tuple[int, ...]:
        return (429, 503)
