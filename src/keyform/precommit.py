"""`keyform-pre-commit`: the entry of the `keyform-validate` pre-commit hook (.pre-commit-hooks.yaml).

pre-commit passes the changed files that match the hook's `files:` pattern. Each belongs to a
workspace, which is validated as `keyform validate -f …` would, once per run:

- a file directly inside a directory named `keys` (the GitOps kit's layout): the whole directory,
  `-f keys/`, as the workflow plans it;
- any other manifest (`keyform.yaml`, `sub/keyform.prod.yaml`): that file alone, `-f FILE`, as
  `keyform validate` reads `keyform.yaml` by default.

Options for other layouts, given as the hook's `args:`:

- `--directories`: every changed file's directory is one workspace (`-f DIR`);
- `-f PATH` (repeatable): validate exactly this workspace whenever a matching file changed.

Exit 1 when any workspace is invalid, with keyform's `file:line: message` for every problem.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import PurePosixPath


def workspaces(filenames: Sequence[str], *, directories: bool = False) -> list[tuple[str, ...]]:
    """The `-f` arguments of each workspace the changed files belong to, in first-seen order."""
    found: dict[tuple[str, ...], None] = {}
    for name in filenames:
        path = PurePosixPath(name)
        parent = path.parent
        if directories or parent.name == "keys":
            found[(f"{parent}/",)] = None
        else:
            found[(str(path),)] = None
    return list(found)


def validate(files: Sequence[str]) -> int:
    """`keyform validate -f F…` in this process; its exit code."""
    from keyform.cli import main as cli
    from keyform.render.safe import one_line

    argv = ["validate"]
    for f in files:
        argv += ["-f", f"./{f}" if f.startswith("-") else f]
    print(one_line(shlex.join(["keyform", *argv])), flush=True)  # (a file name's newline: `\\n`)
    try:
        cli.main(args=argv, prog_name="keyform", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


USAGE = """usage: keyform-pre-commit [--directories | -f PATH ...] [FILE ...]

Validate the keyform workspaces that the given (changed) manifest files belong to.

  -f PATH, --file PATH  validate this workspace (file or directory; repeatable) instead of the files' own
  --directories         each changed file's directory is one workspace
"""


def parse(argv: Sequence[str]) -> tuple[list[str], bool, list[str]]:
    """(fixed workspace, --directories, filenames). Written out rather than argparse: pre-commit
    appends file names after the hook's `args:` with no `--`, and a file name may start with `-`
    (`-f/keyform.yaml` is a file in a directory named `-f`, never an option)."""
    fixed: list[str] = []
    directories = False
    filenames: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item == "--":
            filenames += items[i + 1:]
            break
        if item in ("-f", "--file"):
            if i + 1 == len(items):
                raise UsageError(f"{item} needs a PATH")
            fixed.append(items[i + 1])
            i += 1
        elif item.startswith("--file="):
            fixed.append(item.removeprefix("--file="))
        elif item == "--directories":
            directories = True
        elif item in ("-h", "--help"):
            raise UsageError("")
        elif item.startswith("-") and not os.path.lexists(item):
            raise UsageError(f"unknown option {item!r}")
        else:
            filenames.append(item)
        i += 1
    return fixed, directories, filenames


class UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        fixed, directories, filenames = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        if not str(exc):  # --help: on stdout, as `keyform --help` and `python -m keyform.emulator --help`
            print(USAGE)
            return 0
        # one line, exit 1, as every keyform command's usage error (the usage was printed, exit 2)
        print(f"Error: keyform-pre-commit: {exc} ({USAGE.splitlines()[0]})", file=sys.stderr)
        return 1
    groups = [tuple(fixed)] if fixed else workspaces(filenames, directories=directories)
    failed = 0
    for group in groups:
        failed += validate(group) != 0
    return 1 if failed else 0


def console() -> None:
    sys.exit(main())
