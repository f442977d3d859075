"""Every malformed manifest in tests/malformed/ is refused with the promised message at the right line.

A case is a file `NN-name.yaml`, or a directory `NN-name/` whose files load together. The first
lines of the (first) file say what to expect, one problem per line:

    # expect: <substring of the message> @ <line>           (single file)
    # expect: <substring of the message> @ <file>:<line>    (directory)

`{case}` in the substring stands for the case's own name (`NN-name`), as file names include it.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from keyform.errors import KeyformError
from keyform.manifest import load_workspace

CORPUS = Path(__file__).parent / "malformed"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
EXPECT = re.compile(rb"^# expect: (?P<text>.+) @ (?:(?P<file>[^:\s]+):)?(?P<line>\d+)$")
# Values in the corpus that stand for secrets: no message may ever repeat them.
SECRET_MARKER = "DO-NOT-LEAK"

CASES = sorted(p.name for p in CORPUS.iterdir())


def expectations(case: Path) -> list[tuple[str, str]]:
    """[(substring, "file:line")] from the header comments of the case's first file."""
    first = case if case.is_file() else sorted(case.iterdir())[0]
    found = []
    for raw in first.read_bytes().splitlines():
        match = EXPECT.match(raw)
        if match is None:
            break
        file = case.name if case.is_file() else f"{case.name}/{match['file'].decode()}"
        text = match["text"].decode().replace("{case}", case.name)
        found.append((text, f"{file}:{int(match['line'])}"))
    return found


def test_the_corpus_is_large_and_every_case_states_its_expectation() -> None:
    assert len(CASES) >= 45
    for name in CASES:
        assert expectations(CORPUS / name), f"{name}: no '# expect:' header"


@pytest.mark.parametrize("name", CASES)
def test_malformed_manifest_is_refused_with_a_located_message(name: str) -> None:
    case = CORPUS / name
    with pytest.raises(KeyformError) as caught:
        load_workspace([name], cwd=CORPUS, now=NOW)
    reported = [str(d) for d in caught.value.diagnostics]
    for text, where in expectations(case):
        assert any(r.startswith(f"{where}: ") and text in r for r in reported), (
            f"expected {text!r} at {where}; got:\n" + "\n".join(reported))
    assert all(SECRET_MARKER not in r for r in reported)
    assert all(d.loc is not None and d.loc.line >= 1 for d in caught.value.diagnostics)
