"""Resolving secret references to values, in memory only, at the moment they are needed.

`{env: NAME}` reads the environment, `{file: PATH}` reads a file (stripped of surrounding
whitespace), `{secret_of: ADDRESS}` is resolved by the applier (from this apply's issued secrets
or by reading the source key's sink back). Errors name the reference, never a value.

Provider credentials travel in HTTP headers (`Authorization: Bearer TOKEN`, `X-Org-Id`): one
trailing newline is stripped from an env reference (a token pasted into a CI secret or mounted
from a file often ends in one), and a value that still cannot be a header value (a control
character, a line break, non-ASCII, leading or trailing whitespace) is refused naming the
reference, never the value: the HTTP library's own error quotes the whole header.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping

from keyform import redact
from keyform.errors import Diagnostic, KeyformError
from keyform.fsio import FifoTimeoutError, MiB, NotAFileError, TooLargeError, read_capped
from keyform.model import EnvRef, FileRef, KeySpec, SecretOfRef, SecretRef, Workspace, header_problem, org_id_problem
from keyform.state import State

# The most of a `{file: PATH}` input keyform reads (a secret, a PEM, a DSN): /dev/zero, a FIFO that
# never ends or a huge file is refused, not read until memory runs out.
MAX_INPUT_FILE_BYTES = 1 * MiB


_piped: dict[str, str] = {}  # a `{file:}` pipe's value, by path: read once per process (in memory only)
# and a pipe that gave nothing (its writer not done within fsio.FIFO_SECONDS, or no writer): the same
# answer for every later read in the process. A slow writer read again later gave the plan's second
# look a value its first had not, and the key was passed over as unchanged with no note.
_piped_failed: dict[str, str] = {}


def read_ref(ref: SecretRef, what: str, env: Mapping[str, str] | None = None) -> str:
    """The value behind an env or file reference. `what` says where it is used, for messages."""
    env = os.environ if env is None else env
    if isinstance(ref, EnvRef):
        value = env.get(ref.name)
        if value is None:
            raise KeyformError(f"{what}: environment variable {ref.name} is not set")
        if value == "":
            raise KeyformError(f"{what}: environment variable {ref.name} is set but empty")
        try:  # bytes that are not UTF-8 reach os.environ as lone surrogates: refuse them here
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise KeyformError(f"{what}: environment variable {ref.name} is not valid UTF-8") from None
        redact.remember(value)
        return value
    if isinstance(ref, FileRef):
        if (piped := _piped.get(ref.path)) is not None:
            return piped  # a pipe gives its value once: every later reader in this process gets that
        if (failed := _piped_failed.get(ref.path)) is not None:
            raise KeyformError(f"{what}: {failed}")
        try:  # a link is followed (a Kubernetes secret volume's files are links); a FIFO is read too
            raw, st = read_capped(ref.path, MAX_INPUT_FILE_BYTES, fifo=True)
            # as a text-mode open() read it: CRLF and a lone CR are newlines (fingerprints depend on it)
            value = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").strip()
        except NotAFileError as exc:
            if exc.terminal:  # `{file: /dev/stdin}` run at a terminal: typed there, the secret is shown
                raise KeyformError(f"{what}: {ref.path} is a terminal, and a secret typed there is shown on "
                                   f"it: pipe the secret in (`... | keyform ...`, or `< FILE`)") from None
            raise KeyformError(f"{what}: {ref.path}: not a regular file or a FIFO (a device or a socket); "
                               "name the file holding the secret") from None
        except TooLargeError as exc:
            raise KeyformError(f"{what}: {ref.path}: {exc.strerror}; a secret input file holds one secret") \
                from None
        except FifoTimeoutError as exc:
            _piped_failed[ref.path] = f"cannot read {ref.path}: {exc.strerror}"
            raise KeyformError(f"{what}: {_piped_failed[ref.path]}") from None
        except OSError as exc:
            raise KeyformError(f"{what}: cannot read {ref.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise KeyformError(f"{what}: {ref.path} is not valid UTF-8") from None
        if not value:
            nothing = " (a FIFO nothing was writing to)" if stat.S_ISFIFO(st.st_mode) and not raw else ""
            if stat.S_ISFIFO(st.st_mode):
                _piped_failed[ref.path] = f"{ref.path} is empty{nothing}"
            raise KeyformError(f"{what}: {ref.path} is empty{nothing}")
        redact.remember(value)
        if stat.S_ISFIFO(st.st_mode):  # (`echo $TOKEN | keyform apply` with {file: /dev/stdin}: plan
            _piped[ref.path] = value   # and apply each read it; the second read found the pipe drained)
        return value
    raise KeyformError(f"{what}: secret_of:{ref.address} is resolved by apply, not here")


def read_credential(ref: SecretRef, what: str, env: Mapping[str, str] | None) -> str:
    """A provider credential: one trailing newline stripped from an env value, then checked as a header value."""
    value = read_ref(ref, what, env)
    if isinstance(ref, EnvRef):
        value = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
        if not value:
            raise KeyformError(f"{what}: environment variable {ref.name} holds only a newline")
    problem = header_problem(value)
    if problem:
        source = ref.name if isinstance(ref, EnvRef) else ref.path if isinstance(ref, FileRef) else what
        raise KeyformError(f"{what}: {source} holds a character a header cannot carry ({problem})")
    return value


def provider_credentials(workspace: Workspace, name: str,
                         env: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """(token, org_id) for a provider instance; KeyformError at the manifest line of `token:` (or
    `org_id:`), saying whether the variable is unset or empty."""
    cfg = workspace.providers[name]
    try:
        token = read_credential(cfg.token, f"providers.{name}.token", env)
    except KeyformError as exc:
        raise KeyformError([Diagnostic(d.message, cfg.token_loc or cfg.loc) for d in exc.diagnostics]) from None
    org = cfg.org_id
    try:
        org_id = read_credential(org, f"providers.{name}.org_id", env) if isinstance(org, EnvRef) else org
        problem = org_id_problem(name, org_id) if org_id is not None else None
        if problem:  # a literal: the loader refuses it already (a workspace not built by it)
            raise KeyformError(problem)
    except KeyformError as exc:
        raise KeyformError([Diagnostic(d.message, cfg.org_id_loc or cfg.loc) for d in exc.diagnostics]) from None
    return token, org_id


_UNREAD = "unread"  # `input_fingerprints`: no fingerprint made yet (None is one: cannot be read)


def remember_inputs(workspace: Workspace, env: Mapping[str, str] | None = None) -> None:
    """Read each env and file secret input of the manifests once, for `redact` to know it: for a
    command that shows what APIs report but resolves no input itself (`report`). One that cannot
    be read now is passed over."""
    seen: set[EnvRef | FileRef] = set()
    for spec in workspace.keys.values():
        for ref in spec.secret_inputs.values():
            if isinstance(ref, (EnvRef, FileRef)) and ref not in seen:
                seen.add(ref)
                with contextlib.suppress(KeyformError):
                    read_ref(ref, "", env)


def input_fingerprints(workspace: Workspace, state: State, addresses: list[str] | None = None,
                       env: Mapping[str, str] | None = None) -> dict[str, dict[str, str | None]]:
    """HMAC fingerprints of every env/file secret input (None where it cannot be read now).
    `secret_of` inputs are fingerprinted by the planner from state (which key fed them).

    Each distinct reference is read and fingerprinted once per call, not once per key that uses
    it (thousands of keys often share one variable): the same values, the same None for what
    cannot be read (its message is dropped), the same values remembered for redaction."""
    out: dict[str, dict[str, str | None]] = {}
    fingerprint = state.fingerprinter()  # keyed once for every input
    done: dict[EnvRef | FileRef, str | None] = {}  # reference -> its fingerprint in this call
    fp: str | None
    keys = workspace.keys
    # the reference looked up last and its fingerprint: keys reading one variable share its EnvRef
    # (`secretrefs.build_ref`), found by identity without hashing the record (a Python-level call)
    last: object = _UNREAD
    last_fp: str | None = None
    for address in addresses if addresses is not None else list(keys):
        inputs = keys[address].secret_inputs
        if not inputs:  # most keys
            continue
        fps: dict[str, str | None] = {}
        for path, ref in inputs.items():
            if ref is last:
                fps[path] = last_fp
                continue
            if isinstance(ref, SecretOfRef):
                continue
            fp = done.get(ref, _UNREAD)
            if fp is _UNREAD:
                try:
                    fp = fingerprint(read_ref(ref, f"keys.{address}.{path}", env))
                except KeyformError:
                    fp = None
                done[ref] = fp
            fps[path] = last_fp = fp
            last = ref
        if fps:
            out[address] = fps
    return out


def unresolved_inputs(spec: KeySpec, env: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every env/file input of `spec` that cannot be read now (apply checks before any call)."""
    problems: list[Diagnostic] = []
    for path, ref in sorted(spec.secret_inputs.items()):
        if isinstance(ref, SecretOfRef):
            continue
        try:
            read_ref(ref, f"keys.{spec.address}.{path}", env)
        except KeyformError as exc:
            problems.extend(Diagnostic(d.message, spec.input_loc(path)) for d in exc.diagnostics)
    return problems
