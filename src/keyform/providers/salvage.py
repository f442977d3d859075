"""The remote id of a created key, from a create reply keyform could not read whole.

A create whose reply arrived but cannot be parsed (cut short, wrong shape) is ambiguous: the key
may exist. If the bytes that did arrive name its `id`, the applier journals it (`created`) so
recovery revokes exactly that key instead of matching by attributes and time. Only an `"id"`
member holding a plain token is taken; nothing else of the body is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from keyform import redact

_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,200})"')


def salvage_id(body: bytes, secrets: Iterable[str | None] = ()) -> str | None:
    """The first `"id": "..."` in `body`, or None; None too when that id holds one of `secrets`
    (the issued secret, a secret input): it would be journaled, and shown by the next plan."""
    found = _ID.search(body[:1 << 20])
    key_id = found.group(1).decode("ascii") if found else None
    return None if key_id is None or redact.holds_whole(key_id, secrets) else key_id
