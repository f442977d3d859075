"""A saved plan file (`keyform plan --out FILE`), read back for `apply FILE`, `show` and `graph --plan`.

Any malformed file is one clear error; `printable` replaces control characters in its strings for
`show`, since a plan file downloaded from a pipeline must not drive the reviewer's terminal.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from keyform.errors import KeyformError
from keyform.fsio import MiB, NotAFileError, TooLargeError, read_capped
from keyform.plan import Plan
from keyform.render.safe import one_line
from keyform.statecheck import plan_problem

# The most of a saved plan keyform reads (a plan of 10,000 keys is ~10 MB): a path naming
# /dev/zero or a huge file is refused instead of read until memory runs out.
MAX_BYTES = 256 * MiB

_CONTROL = {c: "\ufffd" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def printable(doc: Any) -> Any:
    """`doc` (decoded JSON) with control characters in its strings replaced: a plan file downloaded
    from a pipeline must not drive the reviewer's terminal (escape sequences in an address or a reason)."""
    if isinstance(doc, str):
        return doc.translate(_CONTROL)
    if isinstance(doc, list):
        return [printable(v) for v in doc]
    if isinstance(doc, dict):
        return {printable(k): printable(v) for k, v in doc.items()}
    return doc


def read_plan(path: str, *, for_display: bool = False) -> Plan:
    """The plan saved in `path`; `for_display`: its strings made printable (`keyform show`)."""
    shown = one_line(path)  # (a newline or escape in the path: one line)
    try:
        data = read_capped(path, MAX_BYTES, fifo=True)[0]  # (a pipe: `<(sops -d ...)`)
        try:
            doc = json.loads(data.decode("utf-8"))
        except ValueError:  # (UnicodeDecodeError too) never the parser's words: they may quote the file
            raise KeyformError(_not_json(path, shown, data)) from None
        if not (isinstance(doc, dict) and "changes" in doc and "manifest_digest" in doc):
            # a state, a journal line or another JSON file (a state's format_version is a plan's too)
            raise ValueError("it has no plan's changes and manifest digest")
        problem = plan_problem(doc)  # (an edited or damaged plan: `"serial": Infinity`, an address of 1)
        if problem:
            raise ValueError(printable(problem))
        return Plan.from_json(printable(doc) if for_display else doc)
    except KeyformError:
        raise
    except NotAFileError:
        raise KeyformError(f"{shown}: not a regular file or a pipe (a device or a socket); name a saved plan "
                           "file") from None
    except TooLargeError as exc:
        raise KeyformError(f"{shown}: {exc.strerror}; not a plan keyform saved") from None
    except OSError as exc:
        raise KeyformError(f"{shown}: cannot read the saved plan: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise KeyformError(f"{shown}: not a keyform plan file ({exc})") from None


def _not_json(path: str, shown: str, data: bytes) -> str:
    """The error for a PLANFILE that is not JSON: most often a manifest given where a plan goes
    (`keyform apply keyform.yaml`), which gets the way to name manifests."""
    from keyform.manifest.loader import looks_like_manifest

    written = "a saved plan is the file `keyform plan --out FILE` writes"
    if not data.strip():
        return f"{shown}: not a keyform plan file (the file is empty; {written})"
    if looks_like_manifest(path, data):
        return (f"{shown}: not a keyform plan file but a manifest: manifests are named with -f "
                f"(`keyform plan -f {shlex.quote(shown)}`); {written}")
    return f"{shown}: not a keyform plan file (not JSON; {written})"
