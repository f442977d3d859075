"""docs/architecture.md stays true: its module table has exactly one row per module under
src/keyform/, and every module path, `keyform.` name and relative link it mentions exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "keyform"
DOC = ROOT / "docs" / "architecture.md"

PY_PATH = re.compile(r"`([\w./*-]+\.py)`")  # `state.py`, `backends/local.py`, `tests/test_x.py`
DOTTED = re.compile(r"`(keyform(?:\.\w+)+)`")  # `keyform.remote.Provider`
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # [text](providers.md), [x](../examples/x/README.md)
PLACEHOLDER = "NAME"  # `providers/NAME_type.py` in the how-to section


def modules() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}


def table_rows(text: str) -> list[str]:
    """The first cell of every row of the `## Modules` table, without its backticks."""
    section = text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip().startswith("`"):
            rows.append(cells[1].strip().strip("`"))
    return rows


def path_exists(token: str) -> bool:
    """A module path relative to src/keyform/, a path from the repository root, a bare module name
    (`questra.py`, or `project.py` in the section on bench/harness/), or a glob of test files."""
    if "*" in token:
        return any(ROOT.glob(token)) or any(PACKAGE.glob(token))
    if (PACKAGE / token).is_file() or (ROOT / token).is_file():
        return True
    return "/" not in token and any(any(d.rglob(token)) for d in (PACKAGE, ROOT / "bench", ROOT / "tests"))


def dotted_exists(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_module_table_lists_every_module_once() -> None:
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    doubled = sorted({r for r in rows if rows.count(r) > 1})
    assert not doubled, f"modules listed twice in docs/architecture.md: {doubled}"
    missing = sorted(modules() - set(rows))
    assert not missing, f"modules missing from the table in docs/architecture.md: {missing}"
    stale = sorted(set(rows) - modules())
    assert not stale, f"docs/architecture.md lists modules that do not exist: {stale}"


def test_every_module_path_the_doc_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = {t for t in PY_PATH.findall(text) if PLACEHOLDER not in t}
    assert named, "the pattern found no module paths: the test would check nothing"
    gone = sorted(t for t in named if not path_exists(t))
    assert not gone, f"docs/architecture.md names paths that do not exist: {gone}"


def test_every_keyform_name_the_doc_uses_exists() -> None:
    names = set(DOTTED.findall(DOC.read_text(encoding="utf-8")))
    assert names
    gone = sorted(n for n in names if not dotted_exists(n))
    assert not gone, f"docs/architecture.md names modules or objects that do not exist: {gone}"


def test_every_relative_link_resolves() -> None:
    links = [t for t in LINK.findall(DOC.read_text(encoding="utf-8")) if "://" not in t]
    assert links
    broken = sorted(t for t in links if not (DOC.parent / t).exists())
    assert not broken, f"docs/architecture.md links to files that do not exist: {broken}"


def test_the_checks_catch_a_stale_doc() -> None:
    """The helpers refuse what a stale doc would hold: a removed module, a missing row."""
    assert not path_exists("statestore.py") and not path_exists("statelock.py")
    assert path_exists("backends/local.py") and path_exists("fsio.py") and path_exists("tests/test_*.py")
    assert not dotted_exists("keyform.statestore.StateStore")
    assert not dotted_exists("keyform.journal.JournalFile")
    assert dotted_exists("keyform.backends.local.LocalBackend")
    table = "# x\n\n## Modules\n\n| module | what |\n|---|---|\n| `state.py` | s |\n| `statestore.py` | old |\n\n## Next\n"
    assert table_rows(table) == ["state.py", "statestore.py"]
