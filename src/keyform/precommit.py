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

import argparse
import sys
from collections.abc import Sequence
from pathlib import PurePosixPath


def workspaces(filenames: Sequence[str], *, directories: bool = False) -> list[tuple[str, ...]]:
    """The `-f` arguments of each workspace the changed files belong to, in first-seen order."""
    found: dict[tuple[str, ...], None] = {}
    for name in filenames:
        path = PurePosixPath(name.replace("\\", "/"))
        parent = path.parent
        if directories or parent.name == "keys":
            found[(f"{parent}/",)] = None
        else:
            found[(str(path),)] = None
    return list(found)


def validate(files: Sequence[str]) -> int:
    """`keyform validate -f F…` in this process; its exit code."""
    from keyform.cli import main as cli

    argv = ["validate"]
    for f in files:
        argv += ["-f", f]
    print("keyform " + " ".join(argv), flush=True)
    try:
        cli.main(args=argv, prog_name="keyform", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="keyform-pre-commit",
        description="Validate the keyform workspaces that the given (changed) manifest files belong to.")
    parser.add_argument("-f", "--file", dest="fixed", action="append", default=[], metavar="PATH",
                        help="validate this workspace (file or directory; repeatable) instead of the files' own")
    parser.add_argument("--directories", action="store_true",
                        help="each changed file's directory is one workspace")
    parser.add_argument("filenames", nargs="*", help="changed manifest files (passed by pre-commit)")
    args = parser.parse_args(argv)
    if args.fixed:
        groups = [tuple(args.fixed)]
    else:
        groups = workspaces(args.filenames, directories=args.directories)
    failed = 0
    for group in groups:
        failed += validate(group) != 0
    return 1 if failed else 0


def console() -> None:
    sys.exit(main())
