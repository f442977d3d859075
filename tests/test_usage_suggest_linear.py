"""Found by an adversarial pass (stop 36): `report --unmanaged` suggested an address per unmanaged
key by trying `base-2`, `base-3`, ... from 2 for every key: N keys with one name (an automation that
made "temp" keys in a loop) cost N²/2 probes (20,000 such keys: 104 s). Counted here, not timed."""

from __future__ import annotations

from datetime import datetime, timezone

from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.usage import suggest_address, unmanaged_rows

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)


class CountingSet(set[str]):
    probes = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.probes += 1
        return super().__contains__(item)


def test_many_keys_with_one_name_cost_one_probe_each() -> None:
    taken, suffixes = CountingSet({"temp-3"}), dict[str, int]()  # an address already in use is still skipped
    got = [suggest_address("temp", taken, suffixes) for _ in range(1_000)]
    assert got[:4] == ["temp", "temp-2", "temp-4", "temp-5"] and len(set(got)) == 1_000
    assert CountingSet.probes <= 1_000 + 2, CountingSet.probes  # linear, not ~500,000


def test_the_report_suggests_distinct_addresses_for_keys_named_alike() -> None:
    keys = {f"ak_{i:06d}": RemoteKey(id=f"ak_{i:06d}", attrs={"name": "temp"}, created_at="2026-01-01T00:00:00Z",
                                     usage_reported=True) for i in range(2_000)}
    report = unmanaged_rows(RemoteSnapshot({"qp": InstanceSnapshot(keys)}, refreshed=True), {"qp": "questra"},
                            set(), NOW, taken={"temp-2"})
    addresses = [r.address for r in report.rows["qp"]]
    assert len(set(addresses)) == 2_000 and "temp-2" not in addresses and "temp" in addresses
