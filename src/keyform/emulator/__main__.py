"""``python -m keyform.emulator``: serve the emulator in the foreground until SIGINT/SIGTERM.

The same options as ``keyform emulator`` (a click command in ``keyform.cli``); this argparse twin
keeps the emulator package standard-library only. tests/test_cli_conventions.py checks that both
take the same options with the same defaults.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .config import EmulatorConfig
from .server import Emulator


def parse_args(argv: Sequence[str] | None = None) -> EmulatorConfig:
    """Build an :class:`EmulatorConfig` from command-line arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    problem = _env_port_problem()
    if problem and not any(a.startswith("--p") and "--port".startswith(a.split("=")[0]) for a in given):
        parser.error(problem)
    rate_limits: dict[str, float] = {}
    for item in args.org_rate_limit:
        name, sep, rps = item.rpartition("=")
        try:
            rate_limits[name] = _decimal(rps)
        except argparse.ArgumentTypeError:
            name = ""
        if not sep or not name.strip():
            parser.error(f"--org-rate-limit {item!r}: expected ORG=RPS, e.g. org_a=10")
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        rate_limit_rate=args.rate_limit_rate,
        drop_after_commit_rate=args.drop_after_commit_rate,
        seed=args.seed,
        questra_list_shape=args.questra_list_shape,
        tokens=frozenset(args.token) if args.token else None,
        read_only_tokens=frozenset(args.read_only_token or ()),
        retry_after=args.retry_after,
        log_requests=args.log_requests,
        rate_limit_rps=args.rate_limit_rps,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_scope=args.rate_limit_scope,
        rate_limits=rate_limits,
        clock_offset=args.clock_offset,
    )


_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def _integer(text: str) -> int:
    """An integer in ASCII digits: int() took `٣` (Arabic-Indic three) as 3, and `1_000` (and raised
    on more than 4,300 digits)."""
    if not _INTEGER.fullmatch(text.strip()) or len(text.strip()) > 30:
        raise argparse.ArgumentTypeError(f"{_cut(text)} is not an integer (ASCII digits 0-9)")
    return int(text)


def _decimal(text: str) -> float:
    """A finite decimal number in ASCII digits (float() took `٣`, `nan` and `inf`)."""
    if not _DECIMAL.fullmatch(text.strip()) or not math.isfinite(float(text)):
        raise argparse.ArgumentTypeError(f"{_cut(text)} is not a number (ASCII digits 0-9)")
    return float(text)


def _cut(text: str) -> str:
    """`_shown`, at most 60 characters: a 5,000-digit value is not repeated whole."""
    return _shown(text if len(text) <= 60 else text[:59] + "…")


def _text(what: str) -> Callable[[str], str]:
    """A value that must not be empty or blank: `--host ""` listened on every interface."""
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty {what} (is the variable it came from unset?)")
        return text
    return check


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 1, as every keyform command's is
    (argparse prints its usage and exits 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"Error: {message} (python -m keyform.emulator --help shows the options)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse twin of `keyform emulator`'s click options."""
    parser = _Parser(prog="keyform emulator", description=(
        "Serve the Questra and TextQL key APIs in memory on one port, until Ctrl-C or SIGTERM."))
    parser.add_argument("--host", type=_text("host"), default="127.0.0.1")
    parser.add_argument("--port", type=_integer, default=_default_port(), help="0 picks a free port")
    parser.add_argument("--latency-ms", type=_decimal, default=0)
    parser.add_argument("--error-rate", type=_decimal, default=0.0, help="probability of a 503")
    parser.add_argument("--rate-limit-rate", type=_decimal, default=0.0, help="probability of a 429")
    parser.add_argument("--retry-after", type=_decimal, default=1.0, help="Retry-After seconds on a 429")
    parser.add_argument("--drop-after-commit-rate", type=_decimal, default=0.0)
    parser.add_argument("--seed", type=_integer, default=None)
    parser.add_argument("--questra-list-shape", choices=("array", "data", "none"), default="array")
    parser.add_argument("--token", type=_text("token"), action="append",
                        help="accepted bearer token (repeatable; default any)")
    parser.add_argument("--read-only-token", type=_text("token"), action="append",
                        help="bearer token accepted only for listing; every write answers 403 (repeatable)")
    parser.add_argument("--log-requests", action="store_true")
    parser.add_argument("--rate-limit-rps", type=_decimal, default=0.0,
                        help="requests/s allowed per org (or per token); 429 + Retry-After beyond (0: none)")
    parser.add_argument("--rate-limit-burst", type=_decimal, default=0.0, help="bucket size (default: 1 s worth)")
    parser.add_argument("--rate-limit-scope", choices=("org", "token"), default="org")
    parser.add_argument("--org-rate-limit", action="append", default=[], metavar="ORG=RPS",
                        help="this org's (or token's) own rate, repeatable")
    parser.add_argument("--clock-offset", type=_decimal, default=0.0, metavar="SECONDS",
                        help="the APIs' clock is this far off the real time (negative: behind)")
    return parser


def _shown(text: str) -> str:
    """`text` as typed, or its Python literal when it holds a character a terminal would act on
    (an escape, a newline, a bidi control): the message stays one line that shows what was given."""
    return text if text.isprintable() else repr(text)


def _default_port() -> int:
    """`KEYFORM_EMULATOR_PORT`, else 8787 (as `keyform emulator`; `parse_args` refuses a value
    that is not a port when no --port is given)."""
    text = os.environ.get("KEYFORM_EMULATOR_PORT", "").strip()
    return int(text) if _env_port_problem() is None and text else 8787


def _env_port_problem() -> str | None:
    """Why `KEYFORM_EMULATOR_PORT` is not a port (None when unset, empty or one). `isdigit()` took
    "²" (then int() raised: a traceback) and "-1" or "abc" were passed over for 8787, where
    `keyform emulator` refuses them; 5,000 digits raised in int(), and `+80` was refused where
    `keyform emulator` takes it (an integer as `_integer` reads one)."""
    text = os.environ.get("KEYFORM_EMULATOR_PORT", "").strip()
    if not text or (_INTEGER.fullmatch(text) and len(text) <= 30 and 0 <= int(text) <= 65535):
        return None
    return f"KEYFORM_EMULATOR_PORT {_shown(text)} is not a port (an integer 0-65535)"


def main(argv: Sequence[str] | None = None) -> int:
    """Start the emulator, announce its URL on one line, serve until interrupted."""
    return serve(parse_args(argv))


def serve(config: EmulatorConfig) -> int:
    """Serve `config` in the foreground; 1 (and the reason on stderr) if it cannot start."""
    try:
        emulator = Emulator(config)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        where = f"{_shown(config.host)}:{config.port}"
        print(f"Error: keyform emulator cannot listen on {where}: {reason}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"Error: keyform emulator: {exc}", file=sys.stderr)
        return 1
    print(f"keyform emulator listening on {emulator.url}", flush=True)
    emulator.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
