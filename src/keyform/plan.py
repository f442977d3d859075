"""The plan as data: produced by the planner, consumed by the applier and by every renderer.

Like Terraform's `internal/plans`: a Plan is a value. It serialises to JSON (saved plans, `--format
json`) and back, and never holds a secret: sensitive inputs appear only as their reference
(`secret_of:ci-bot`, `env:NAME`) and secrets only as the sink they will go to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field
from enum import Enum
from functools import cached_property
from typing import Any

from keyform.records import record

FORMAT_VERSION = "1"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters (ESC, BEL, CR, ...)


class Action(str, Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "noop"

    @property
    def symbol(self) -> str:
        # a replace creates the new key before it destroys the old one: Terraform's `+/-`
        return {"create": "+", "update": "~", "replace": "+/-", "delete": "-", "noop": " "}[self.value]


@record
class AttrChange:
    """One attribute's before → after. `sensitive` values are references, never secrets."""

    name: str
    before: Any
    after: Any
    forces_replacement: bool = False
    sensitive: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after,
                "forces_replacement": self.forces_replacement, "sensitive": self.sensitive}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AttrChange:
        return cls(d["name"], d.get("before"), d.get("after"), bool(d.get("forces_replacement")),
                   bool(d.get("sensitive")))


@record(dict_init=True)  # a plan makes one per key, no-ops included
class Change:
    address: str
    action: Action
    provider: str
    provider_type: str
    reasons: tuple[str, ...] = ()
    attrs: tuple[AttrChange, ...] = ()  # changed attributes (create: all; delete: none)
    remote_id: str | None = None  # the existing key updated / replaced / deleted
    deposed: bool = False  # remote_id is a deposed key (old half of a rotation)
    sink: str | None = None  # `sink:ENTRY` where a newly issued secret will go
    depends_on: tuple[str, ...] = ()  # secret_of sources
    orphan: bool = False  # remote_id is a key an interrupted create left behind (deposed is set too)
    stale: bool = False  # a DELETE of `sink` only: a copy of the key's secret its sink move left behind
    dead: bool = False  # a REPLACE whose old key (remote_id) is revoked or expired already: dropped, not deposed

    def to_json(self) -> dict[str, Any]:
        doc = {
            "address": self.address,
            "action": self.action.value,
            "provider": self.provider,
            "provider_type": self.provider_type,
            "remote_id": self.remote_id,
            "deposed": self.deposed,
            "reasons": list(self.reasons),
            "attributes": [a.to_json() for a in self.attrs],
            "sink": self.sink,
            "depends_on": list(self.depends_on),
        }
        if self.orphan:
            doc["orphan"] = True
        if self.stale:
            doc["stale"] = True
        if self.dead:
            doc["dead"] = True
        return doc

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Change:
        """The change as a saved plan holds it; ValueError for a `stale` flag on anything but the
        removal of a sink entry (on a replace it hid a real rotation from every total and policy)."""
        change = cls(
            address=d["address"], action=Action(d["action"]), provider=d["provider"],
            provider_type=d["provider_type"], reasons=tuple(d.get("reasons") or ()),
            attrs=tuple(AttrChange.from_json(a) for a in d.get("attributes") or ()),
            remote_id=d.get("remote_id"), deposed=bool(d.get("deposed")), sink=d.get("sink"),
            depends_on=tuple(d.get("depends_on") or ()), orphan=bool(d.get("orphan")), stale=bool(d.get("stale")),
            dead=bool(d.get("dead")),
        )
        if change.dead and (change.action is not Action.REPLACE or change.deposed):
            raise ValueError(f"the change of {change.address!r} is marked dead but is not a replacement (dead is "
                             "only valid on a replace, whose old key is dropped)")
        if change.stale and (change.action is not Action.DELETE or change.deposed or change.orphan
                             or not isinstance(change.sink, str) or not change.sink):
            raise ValueError(f"the change of {change.address!r} is marked stale but is not the removal of a sink "
                             "entry (stale is only valid on a delete with a sink)")
        for what, text in (("address", change.address), ("sink", change.sink)):
            # keyform writes neither with a control character (addresses and entry names refuse
            # them); a plan file that has one would drive the terminal of whoever applies it
            if isinstance(text, str) and _CONTROL.search(text):
                raise ValueError(f"the {what} {text!r} of a change holds a control character")
        return change

    @property
    def primary(self) -> bool:
        """The key's own change: not the revocation of a deposed key or an orphan, nor the removal
        of a stale copy of its secret (each of those shares the key's address)."""
        return not self.deposed and not self.stale

    @property
    def key(self) -> str:
        """Unique id of the change within a plan (a deposed key shares its address)."""
        if self.orphan:
            return f"{self.remote_id} (orphan of an interrupted create of {self.address})"
        if self.stale:
            return f"{self.address} (stale copy at {self.sink})"
        return f"{self.address} (deposed {self.remote_id})" if self.deposed else self.address


def looks_like_saved_plan(doc: object) -> bool:
    """Whether decoded JSON is a plan `plan --out` wrote (of any format version): an object with the
    plan's own fields, which neither a state nor a journal has."""
    return isinstance(doc, dict) and "changes" in doc and "manifest_digest" in doc


@record
class Plan:
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()  # plan-wide remarks (e.g. "questra-prod: no list endpoint ...")
    lineage: str | None = None
    serial: int = 0
    manifest_digest: str = ""
    created_at: str = ""
    destroy: bool = False
    targets: tuple[str, ...] = field(default_factory=tuple)
    # the digest of the interrupted apply's journal the plan was made with ("" without one,
    # `recovery.journal_digest`): applying the plan after that journal changed is refused
    journal: str = ""
    # the state does not record yet what an interrupted apply did (its journal's finished changes,
    # a create rolled forward): no key changes, but `apply` saves them, so `plan --detailed-exitcode`
    # exits 2, as Terraform's for a plan of moves only
    unsaved: bool = False
    # address -> `inputs_digest` of the fingerprints of its env/file write-only inputs, for each key
    # the plan changes: applying the plan after one of those values changed is refused
    inputs: Mapping[str, str] = field(default_factory=dict)
    # the keys the plan could not check, their env/file inputs unreadable where it was made (a
    # plan job without the secrets at hand): "no changes" cannot be said of them
    unchecked: tuple[str, ...] = ()
    # provider instance -> setting -> a digest of the value its `{env: NAME}` held where the plan was
    # made (None: it could not be read), for its base_url and other settings that are not secret
    # (`keyform.envsettings`): applying the plan after one of those changed is refused
    settings: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)

    @cached_property  # (a plan is a value: looked for once, not by each of a render's several questions)
    def _acted(self) -> tuple[Change, ...]:
        noop = Action.NOOP  # (once: an enum member's lookup is ~70 ns, a third of this loop per change)
        return tuple(c for c in self.changes if c.action is not noop)

    @property
    def actionable(self) -> list[Change]:
        return list(self._acted)

    @property
    def has_changes(self) -> bool:
        return bool(self._acted)

    def counts(self) -> dict[str, int]:
        """Changes per action; a stale copy's removal (`Change.stale`) deletes no key, so it is
        counted apart, under `stale_copies`."""
        out = {a.value: 0 for a in Action}
        out["stale_copies"] = 0
        for c in self.changes:
            out["stale_copies" if c.stale and c.action is Action.DELETE else c.action.value] += 1
        return out

    def to_json(self, *, inputs: bool = True) -> dict[str, Any]:
        """The plan document; `inputs=False` leaves out the digests of inputs and provider
        settings, which only `apply FILE` reads (not printed where CI logs keep them: `plan
        --format json`, `show`)."""
        return {
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "state": {"lineage": self.lineage, "serial": self.serial,
                      **({"journal": self.journal} if self.journal else {}),
                      **({"unsaved_changes": True} if self.unsaved else {})},
            "manifest_digest": self.manifest_digest,
            "destroy": self.destroy,
            "targets": list(self.targets),
            "summary": self.counts(),
            "notes": list(self.notes),
            "changes": [c.to_json() for c in self.changes],
            **({"inputs": dict(sorted(self.inputs.items()))} if self.inputs and inputs else {}),
            **({"unchecked": list(self.unchecked)} if self.unchecked else {}),
            **({"provider_settings": {p: dict(sorted(s.items())) for p, s in sorted(self.settings.items())}}
               if self.settings and inputs else {}),
        }

    def dumps(self, *, inputs: bool = True) -> str:
        """The plan as JSON (`plan --format json`, `plan --out`): a server's bidi controls, zero-width
        characters and lone surrogates as `\\u` escapes (`render.safe.json_doc`)."""
        from keyform.render.safe import json_doc

        return json_doc(self.to_json(inputs=inputs), indent=2) + "\n"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Plan:
        if str(d.get("format_version")) != FORMAT_VERSION:
            raise ValueError(f"unsupported plan format_version {d.get('format_version')!r}")
        st = d.get("state") or {}
        inputs = d.get("inputs") or {}
        if not isinstance(inputs, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in inputs.items()):
            raise ValueError("inputs must map key addresses to digests")
        settings = d.get("provider_settings") or {}
        if not isinstance(settings, dict) or not all(
                isinstance(p, str) and isinstance(s, dict)
                and all(isinstance(n, str) and (v is None or isinstance(v, str)) for n, v in s.items())
                for p, s in settings.items()):
            raise ValueError("provider_settings must map provider instances to their settings' digests")
        return cls(
            changes=tuple(Change.from_json(c) for c in d.get("changes") or ()),
            notes=tuple(d.get("notes") or ()), lineage=st.get("lineage"), serial=int(st.get("serial", 0)),
            manifest_digest=d.get("manifest_digest", ""), created_at=d.get("created_at", ""),
            destroy=bool(d.get("destroy")), targets=tuple(d.get("targets") or ()), journal=str(st.get("journal") or ""),
            unsaved=st.get("unsaved_changes") is True,
            inputs=inputs, unchecked=tuple(d.get("unchecked") or ()), settings=settings,
        )
