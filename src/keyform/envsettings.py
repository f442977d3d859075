"""The provider settings the manifests leave to the environment, as a saved plan records them.

`base_url: {env: NAME}`, a Questra `org_id: {env: NAME}` and a `type: rest` provider's options
that are not secret, given as `{env: NAME}`, are read when the provider is opened, not when the
manifests load, so the manifest digest a saved plan is checked against does not cover them. A
`base_url` moved between `plan --out` and `apply FILE` sent the provider's token to a host nobody
reviewed. A saved plan therefore keeps, per provider instance and setting, a digest of the value
read where the plan was made (`Plan.settings`), and `apply FILE` refuses the plan when one differs
now (`stale_settings`), before recovery or anything else calls a provider.

Secrets are not recorded: a token, or a rest option marked `secret: true`. A changed credential
sends requests nowhere new, and the plan `apply FILE` makes again (listings refreshed, at the
reviewed host) shows what it changes. Plug-in providers' own options are passed to the plug-in as
written (keyform resolves no reference in them), so the manifest digest covers them; no sink type
reads a setting from the environment. The digest is an HMAC keyed by the manifest digest of the
plan, of values that are not secret (a `base_url` with credentials in it is refused): nothing of
a value is stored, and no value is ever shown in a message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping

from keyform.errors import KeyformError
from keyform.model import EnvRef, FileRef, ProviderConfig, Workspace
from keyform.records import record

# provider instance -> setting -> digest of its value (None: it could not be read)
Settings = Mapping[str, Mapping[str, str | None]]


@record
class Setting:
    """One provider setting read from the environment (or a file): `name` as written in the
    provider block (`base_url`, `org_id`, a rest option's name)."""

    provider: str
    name: str
    ref: EnvRef | FileRef
    kind: str  # "base_url" | "org_id" | "option": how the provider reads it

    @property
    def described(self) -> str:
        """`provider qp's base_url (from env QP_URL)`: names it, never its value."""
        source = f"env {self.ref.name}" if isinstance(self.ref, EnvRef) else f"file {self.ref.path}"
        return f"provider {self.provider}'s {self.name} (from {source})"


def env_settings(workspace: Workspace) -> Iterator[Setting]:
    """Every provider setting of the workspace that is read from the environment or a file and is
    not a secret, by instance and setting name."""
    for name, config in sorted(workspace.providers.items()):
        if config.base_url_env:
            yield Setting(name, "base_url", EnvRef(config.base_url_env), "base_url")
        if isinstance(config.org_id, EnvRef):
            yield Setting(name, "org_id", config.org_id, "org_id")
        for option, raw in sorted(config.options.items()):
            if isinstance(raw, (EnvRef, FileRef)) and not _secret_option(config, option):
                yield Setting(name, option, raw, "option")


def _secret_option(config: ProviderConfig, option: str) -> bool:
    from keyform.manifest.restdef import RestDefinition

    definition = config.definition
    if not isinstance(definition, RestDefinition):
        return True  # (only a rest provider's options hold references keyform resolves)
    return bool(definition.options[option][1])


def read_setting(workspace: Workspace, setting: Setting, env: Mapping[str, str] | None = None) -> str:
    """The value the provider is opened with (checked, trimmed as it is there); KeyformError when
    it cannot be read. Never logged or shown."""
    config = workspace.providers[setting.provider]
    if setting.kind == "base_url":
        from keyform.providers.pool import resolve_base_url

        return resolve_base_url(config, env).base_url
    from keyform.manifest.restglue import plain_option
    from keyform.resolve import read_credential

    what = f"providers.{setting.provider}.{setting.name}"
    if setting.kind == "org_id":
        return read_credential(setting.ref, what, env)
    return plain_option(setting.ref, what, env)  # as `restglue.resolve_options` reads it


def _digest(manifest_digest: str, setting: Setting, value: str) -> str:
    message = json.dumps([setting.provider, setting.name, value]).encode("utf-8")
    return hmac.new(manifest_digest.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _value_digest(workspace: Workspace, setting: Setting, env: Mapping[str, str] | None) -> str | None:
    try:
        return _digest(workspace.digest, setting, read_setting(workspace, setting, env))
    except KeyformError:
        return None


def settings_digests(workspace: Workspace, env: Mapping[str, str] | None = None) -> dict[str, dict[str, str | None]]:
    """For `Plan.settings`: each setting's digest, None where it cannot be read now (a plan made
    without refreshing may not need it); {} for a workspace that leaves nothing to the environment."""
    out: dict[str, dict[str, str | None]] = {}
    for setting in env_settings(workspace):
        out.setdefault(setting.provider, {})[setting.name] = _value_digest(workspace, setting, env)
    return out


def stale_settings(workspace: Workspace, recorded: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """Why the settings a saved plan was made with (`recorded`, for these manifests: its manifest
    digest is the workspace's) are not the ones a provider would be opened with now; [] when they
    are. A setting the plan does not record is refused: a plan file of a keyform that did not
    record them (or an edited one) could not say what it was made with."""
    problems = []
    for setting in env_settings(workspace):
        entries = recorded.get(setting.provider) or {}
        if setting.name not in entries:
            problems.append(f"it was made by an earlier keyform (or edited) and does not record {setting.described}")
            continue
        then, now = entries[setting.name], _value_digest(workspace, setting, env)
        if then == now:
            continue
        if then is None:
            problems.append(f"{setting.described} could not be read when it was made, and can now")
        elif now is None:
            problems.append(f"{setting.described} cannot be read now")
        else:
            problems.append(f"{setting.described} changed since it was made")
    return problems
