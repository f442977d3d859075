"""Verdicts of the state check, kept by the exact bytes checked: a state document whose bytes passed
the full check before (`statecheck.state_problem`: its schema, every timestamp and duration) is not
checked again.

At 10,000 keys that check is a tenth of a no-change plan's CPU, and a state file's bytes change
only when keyform saves it. A verdict is one small entry in keyform's cache directory, beside the
parsed manifests (`cachedir`: `$KEYFORM_CACHE_DIR`, else `~/.cache/keyform/manifests`; 0700, owned
by the user; `KEYFORM_NO_CACHE=1` turns it off), named by the HMAC, under the user's cache key (no
one without it can plant a verdict keyform would read), of:

- the checked document's exact bytes and what it was checked as (`state`),
- keyform's and Python's versions, the cache format, and the size and modification time of the
  modules and schema whose code makes the verdict (an edited check never trusts an old verdict).

Only a pass is kept: a document that fails is checked (and reported) every time. An entry that is
missing, unreadable, not a plain file, or not exactly what `remember` writes is no verdict, and the
document is checked again. Nothing here raises. A verdict holds no part of the document (no
secret was ever in a state; the name is a digest).
"""

from __future__ import annotations

import json
from functools import cache

from keyform import cachedir

# Relative to the keyform package, as parsecache's producers: the check and what it calls.
_PRODUCERS = ("checkcache.py", "state.py", "statecheck.py", "manifest/fastcheck.py", "durations.py",
              "schemas/state.schema.json")
_VERDICT = "passed"
_FORMAT = 1
_MAX_ENTRY = 512  # a verdict entry is ~150 bytes


@cache
def _stamp() -> str:
    return cachedir.code_stamp(_PRODUCERS, _FORMAT)


def verdict_key(what: str, data: bytes) -> str | None:
    """The verdict's name for a document of these exact bytes, checked as `what`, by this keyform,
    under this user's cache key (`cachedir.entry_name`); None when there is no usable key."""
    name = cachedir.entry_name(_stamp(), what.encode(), data)
    return None if name is None else "check-" + name


def _entry(what: str, key: str) -> str:
    return json.dumps({"format": _FORMAT, "key": key, "check": what, "verdict": _VERDICT},
                      separators=(",", ":"))


def passed(what: str, data: bytes) -> bool:
    """True when a document of these exact bytes passed the `what` check before, under this keyform."""
    key = verdict_key(what, data)
    raw = cachedir.read(key, limit=_MAX_ENTRY)
    if key is None or raw is None or raw.decode("utf-8", "replace") != _entry(what, key):
        return False
    cachedir.touch(key)
    return True


def remember(what: str, data: bytes) -> None:
    """Keep the verdict that these bytes passed the `what` check. Failing to write is not an error."""
    key = verdict_key(what, data)
    if key is not None:
        cachedir.write(key, _entry(what, key))
