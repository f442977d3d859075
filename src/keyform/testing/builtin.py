"""`ServerFaults` for keyform's built-in emulator (Questra and TextQL), through its control API.

The emulator injects faults by rate; a rate of 1 makes them certain. It does not paginate (neither
API has pagination), so `set_page_size` answers False and the kit reports that test as skipped.
"""

from __future__ import annotations

from keyform.emulator.client import EmulatorControl


class EmulatorFaults:
    def __init__(self, base_url: str) -> None:
        self.control = EmulatorControl(base_url, timeout=10)

    def inject(self, status: int) -> None:
        if status == 429:
            self._set(rate_limit_rate=1.0, retry_after=0)
        elif status == 503:
            self._set(error_rate=1.0)
        else:
            raise ValueError(f"the emulator injects only 429 and 503, not {status}")

    def drop_after_commit(self) -> None:
        self._set(drop_after_commit_rate=1.0)

    def clear(self) -> None:
        self._set(rate_limit_rate=0.0, error_rate=0.0, drop_after_commit_rate=0.0)

    def _set(self, **knobs: float) -> None:
        """One control call on a connection of its own (closed at once: the kit holds no resources)."""
        try:
            self.control.faults(**knobs)
        finally:
            self.control.close()

    def set_page_size(self, n: int) -> bool:
        return False

    def injectable(self) -> tuple[int, ...]:
        return (429, 503)
