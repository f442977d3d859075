"""State surgery and adoption: `keyform import`, `state list|show|rm|mv|push`. Each works on a loaded,
locked Session (or backend) and never touches a secret (state holds none)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from keyform.backends import StateBackend
from keyform.durations import format_time, maybe_time, parse_time
from keyform.errors import Diagnostics, KeyformError, warning
from keyform.kinds import kind
from keyform.model import KeySpec, SecretOfRef, SinkTarget, header_of
from keyform.planner import UNKNOWN_FINGERPRINT
from keyform.remote import RemoteKey
from keyform.render.safe import quoted
from keyform.resolve import read_ref
from keyform.state import KeyState, State, secret_of_edge, secret_of_fingerprint

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters


@cache
def _address_rule() -> tuple[Callable[[Any], bool], str]:
    """The manifests' rule for a key address (`$defs/address` of schemas/manifest.schema.json, the
    one the state's schema holds too): its compiled check and its message."""
    from keyform.manifest.fastcheck import bundled_schema, compile_schema

    rule = bundled_schema("manifest.schema.json")["$defs"]["address"]
    return compile_schema(rule), str(rule["errorMessage"])


def check_address(command: str, address: str) -> None:
    """Refuse an address a command would write into the state that the manifests (and so the
    state's own check, which every later command runs) would refuse, in the manifest validator's
    words: `state mv: 'bad name' is not a valid address (letters, digits, ...)`."""
    valid, message = _address_rule()
    if not valid(address):
        shown = repr(address)
        raise KeyformError(f"{command}: {shown if len(shown) <= 60 else shown[:57] + '...'} is {message}")


def check_entry_name(command: str, name: str) -> None:
    """Refuse a sink entry name (`state mv --sink-name`) the state cannot hold (empty), or that
    keyform never writes (a control character, which plans and messages would echo to a terminal)."""
    if not name:
        raise KeyformError(f"{command}: --sink-name must not be empty")
    if _CONTROL.search(name):
        raise KeyformError(f"{command}: --sink-name {name!r} holds a control character")


def import_key(sess: Any, address: str, remote_id: str) -> tuple[KeyState, Diagnostics]:
    """Adopt an existing remote key as `address`; returns the record and warnings for the user."""
    from keyform.render.safe import one_line

    ws, state = sess.workspace, sess.state
    shown = one_line(remote_id)  # as typed, on one line (a newline in it made a second `Error:` line)
    spec: KeySpec | None = ws.keys.get(address)
    if spec is None:
        raise KeyformError(f"import: no key {quoted(address)} in the manifests; declare it first, then import")
    if address in state.keys:
        raise KeyformError(f"import: {address} is already managed (remote id {state.keys[address].remote_id}); "
                           "use `keyform state rm` first to re-import it")
    # compared across every instance of the type: two instances may reach one account (an admin
    # token beside a CI token), and a key managed twice is revoked under the other address's users;
    # and on the instance itself, whatever type the state recorded (an instance switched to the same
    # API under `type: rest` lists the same keys: the next apply replaces the recorded one)
    def same(provider: str, provider_type: str) -> bool:
        return provider_type == spec.provider_type or provider == spec.provider

    taken = {k.remote_id: a for a, k in state.keys.items() if same(k.provider, k.provider_type)}
    if remote_id in taken:
        raise KeyformError(f"import: {shown} is already managed as {taken[remote_id]}")
    deposed = next((d for d in state.deposed
                    if same(d.provider, d.provider_type) and d.remote_id == remote_id), None)
    if deposed is not None:  # its revoke is due: the next apply would revoke the key just imported
        raise KeyformError(f"import: {shown} is the old key of a rotation of {deposed.address} (deposed, "
                           f"revoked after {deposed.revoke_after}): the next apply would revoke it. Import a key "
                           "that is not being retired")
    for workspace, other in sorted(sess.store.other_workspace_states().items()):
        # another team's key: two workspaces managing one key revoke it under each other's users
        held = other.holders().get((spec.provider_type, remote_id))
        if held is not None:
            raise KeyformError(f"import: {shown} is already managed as {held} by the workspace {workspace!r} "
                               "of this state backend; a key is managed by one workspace only")
    listed = sess.providers.get(spec.provider).list()
    if listed is None:
        raise KeyformError(f"import: {spec.provider} cannot list keys, so {shown} cannot be looked up")
    from keyform.refresh import keys_by_id

    remote = keys_by_id(spec.provider, listed).get(remote_id)  # (two different copies of it: refused, as plan does)
    if remote is None:
        raise KeyformError(f"import: {spec.provider} has no key with id {shown}")
    if remote.revoked:
        raise KeyformError(f"import: {shown} is revoked; there is nothing to manage")
    expires = parse_time(remote.expires_at) if remote.expires_at else None
    if remote.expired or (expires is not None and expires <= sess.options.clock()):
        when = f" at {remote.expires_at}" if remote.expires_at else ""
        raise KeyformError(f"import: {shown} expired{when}; there is nothing to manage (the next apply would "
                           f"only replace it): leave it out, and apply to create {address}")
    record = _record_for(spec, remote, state, sess.options.env, sess.options.clock())
    warnings: Diagnostics = []
    if kind(spec.provider_type).returns_secret:
        warnings.append(warning(f"the secret of {address} ({remote_id}) cannot be recovered: the API "
                                f"({spec.provider_type}) shows it only once, so it is in no sink. Keys that need "
                                f"it will force a rotation; to rotate now run `keyform apply --replace {address}`."))
    warnings.extend(_unrecorded_fingerprints(spec, record, sess.options.env))
    state.keys[address] = record
    sess.store.save(state)
    return record, warnings


def _unrecorded_fingerprints(spec: KeySpec, record: KeyState, env: Any) -> Diagnostics:
    """A warning per secret input whose fingerprint could not be recorded at import (its variable
    unset, its file unreadable, its source key not managed yet), saying why."""
    out: Diagnostics = []
    for path, ref in sorted(spec.secret_inputs.items()):
        if record.fingerprints.get(path) != UNKNOWN_FINGERPRINT:
            continue
        if isinstance(ref, SecretOfRef):
            reason = f"{ref.address} is not managed yet"
        else:
            try:
                read_ref(ref, path, env)
                continue
            except KeyformError as exc:
                reason = exc.diagnostics[0].message.removeprefix(f"{path}: ")
        out.append(warning(f"the fingerprint of {spec.address}'s {path} ({ref}) could not be recorded: {reason}. "
                           "The next apply that can read it records it; until then a change to it is not detected."))
    return out


def _record_for(spec: KeySpec, remote: RemoteKey, state: State, env: Any, now: Any) -> KeyState:
    k = kind(spec.provider_type)
    attrs = {n: remote.attrs.get(n, spec.attrs.get(n)) if n in k.remote_attributes else spec.attrs.get(n)
             for n in k.attributes}
    if spec.expiry.kind == "at" and remote.expires_at and spec.expiry.at and \
            maybe_time(remote.expires_at) == spec.expiry.at:  # (as times: `.000Z`, `+00:00` alike)
        expiry_spec = spec.expiry.spec
    elif remote.expires_at is None:
        expiry_spec = "never"
    elif spec.expiry.kind == "in":
        expiry_spec = spec.expiry.spec  # a relative expiry cannot be checked after the fact: accept it
    else:
        expiry_spec = f"at:{remote.expires_at}"
    fingerprints: dict[str, str] = {}
    for path, ref in spec.secret_inputs.items():
        if isinstance(ref, SecretOfRef):
            src = state.keys.get(ref.address)
            fingerprints[path] = secret_of_fingerprint(ref.address, src.remote_id) if src else UNKNOWN_FINGERPRINT
            continue
        try:
            fingerprints[path] = state.fingerprint(read_ref(ref, f"keys.{spec.address}.{path}", env))
        except KeyformError:
            fingerprints[path] = UNKNOWN_FINGERPRINT
    visible = {n: v for n, v in remote.attrs.items()}
    if isinstance(visible.get("headers"), dict):
        hidden = {h for p in spec.secret_inputs if (h := header_of(p)) is not None}
        visible["headers"] = {h: v for h, v in visible["headers"].items() if h not in hidden}
        attrs["headers"] = dict(visible["headers"])
    return KeyState.of(spec, remote.id, attrs=attrs, remote=visible, expiry_spec=expiry_spec,
                       expires_at=remote.expires_at, created_at=remote.created_at or format_time(now),
                       sink=spec.sink if k.returns_secret else None, fingerprints=fingerprints,
                       secret_in_sink=not k.returns_secret, applied_at=format_time(now))


def state_list(state: State) -> list[str]:
    """Address, provider instance, remote id: one tab-separated line each (an id as the API chose
    it, shown with nothing that would drive a terminal)."""
    from keyform.render.safe import one_line

    rows = [f"{a}\t{k.provider}\t{one_line(k.remote_id)}" for a, k in sorted(state.keys.items())]
    rows += [f"{d.address} (deposed)\t{d.provider}\t{one_line(d.remote_id)}" for d in state.deposed]
    return rows


def state_show(state: State, address: str) -> dict[str, Any]:
    ks = state.keys.get(address)
    if ks is None:
        raise KeyformError(f"state show: no key {quoted(address)} in the state")
    return {"address": address, **ks.to_json()}


def state_rm(state: State, address: str) -> KeyState:
    ks = state.keys.pop(address, None)
    if ks is None:
        raise KeyformError(f"state rm: no key {quoted(address)} in the state")
    # Its entry stays where keyform wrote it, holding the secret of a key that stays live: it is no
    # longer keyform's to overwrite (noted as keyform's own, a later key given that `as:` silently
    # replaced the only copy of the forgotten key's secret), so it is any other line of the file now
    state.readdress_stale(address, None)  # and so do any copies a sink move left: forgotten, not removed
    return ks


def state_mv(state: State, old: str, new: str, sink_name: str | None = None,
             entry_problem: Callable[[str, str], str | None] | None = None) -> KeyState:
    """Rename `old` to `new`; `sink_name` renames its sink entry too, checked by `entry_problem`
    (sink name, entry name → why that sink cannot hold it) when given."""
    check_address("state mv", new)
    if sink_name is not None:
        check_entry_name("state mv", sink_name)
    if old not in state.keys:
        raise KeyformError(f"state mv: no key {quoted(old)} in the state")
    target = state.keys[old].sink
    if sink_name is not None and target is not None and entry_problem is not None:
        problem = entry_problem(target.sink, sink_name)
        if problem:
            raise KeyformError(f"state mv: --sink-name: {problem}, which sink {target.sink} cannot hold")
    if new in state.keys:
        raise KeyformError(f"state mv: {quoted(new)} is already in the state")
    ks = state.keys.pop(old)
    ks.address = new
    if sink_name is not None and ks.sink is not None:
        if ks.secret_in_sink and sink_name != ks.sink.name:  # the old entry, if still there, stays keyform's
            state.note_written([ks.sink])
        ks.sink = SinkTarget(ks.sink.sink, sink_name)
    state.keys[new] = ks
    state.readdress_stale(old, new)
    for other in state.keys.values():
        for path, fp in list(other.fingerprints.items()):
            other.fingerprints[path] = _renamed_source(fp, old, new)
    for dep in state.deposed:
        if dep.address == old:
            dep.address = new
        # an old consumer in its grace still sends the old source key's secret (`State.fed_by`):
        # its edge follows the source too, or that key was revoked under it after its own grace
        if dep.fed_by:
            dep.fed_by = tuple(sorted(_renamed_source(fp, old, new) for fp in dep.fed_by))
    return ks


def _renamed_source(fingerprint: str, old: str, new: str) -> str:
    """A `secret_of:SOURCE@ID` fingerprint with the source `old` renamed `new`; any other as it is."""
    edge = secret_of_edge(fingerprint)
    return secret_of_fingerprint(new, edge[1]) if edge is not None and edge[0] == old else fingerprint


def push_state(store: StateBackend, pushed: State, *, force: bool = False) -> Diagnostics:
    """Write `pushed` into `store` (which the caller has locked) as its next version: the serial
    becomes one more than both the pushed and the stored one. Without `force`, refuses a state of
    another lineage, an older serial, the same serial with other content, or a backend holding an
    interrupted apply's journal. Returns warnings for what `force` overrode."""
    where = store.describe()
    current = store.load()
    problems: list[str] = []
    if current is not None:
        if current.lineage != pushed.lineage:
            problems.append(f"it holds a state of another lineage ({current.lineage}; the pushed state is "
                            f"{pushed.lineage}), which pushing would replace")
        elif current.serial > pushed.serial:
            problems.append(f"it holds a newer state (serial {current.serial}; the pushed state has serial "
                            f"{pushed.serial}): pull it first")
        elif current.serial == pushed.serial and current.dumps() != pushed.dumps():
            problems.append(f"it holds a different state with the same serial ({current.serial})")
    if store.read_journal():
        problems.append("it holds the journal of an interrupted apply; run `keyform apply` against it first so "
                        "the apply is recovered")
    elsewhere = getattr(store, "lineage_elsewhere", None)  # a database of several workspaces
    twin = elsewhere(pushed.lineage) if elsewhere is not None else None
    if twin is not None:  # never, not even with --force: both workspaces would manage (and revoke) one set of keys
        raise KeyformError(f"{where}: refusing to push: workspace \"{twin}\" already holds a state of this lineage "
                           f"({pushed.lineage}); two workspaces with one state would each revoke keys the other "
                           f"manages, and keyform would refuse both. To move the state to this workspace, keep a "
                           f"pulled copy, delete the old one's row (DELETE FROM keyform_states WHERE workspace = "
                           f"'{twin}'), then push")
    if problems and not force:
        raise KeyformError(f"{where}: refusing to push: " + "; ".join(problems) + ". Use --force to push anyway.")
    if current is not None:
        pushed.serial = max(pushed.serial, current.serial)
    store.save(pushed)
    return [warning(f"{where}: pushed anyway (--force): {p}") for p in problems]
