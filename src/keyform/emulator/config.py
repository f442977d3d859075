"""The emulator's start-up configuration."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmulatorConfig:
    """Where to listen and which faults to inject from the start.

    ``port=0`` picks a free port. The fault knobs (``latency_ms`` … ``retry_after``) can be changed
    later through ``POST /_emulator/faults``, the rate limit (``rate_limit_rps`` per org or token,
    ``rate_limits`` per named org or token) too; ``tokens``, when set, is the only set of bearer tokens
    accepted (others get 401); ``None`` accepts any non-empty token. ``read_only_tokens`` are
    accepted too, but only to list: a create, update, revoke or delete with one answers 403 (a
    reviewer's token, for read-only plans).
    """

    host: str = "127.0.0.1"
    port: int = 8787
    latency_ms: float = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    drop_after_commit_rate: float = 0.0
    seed: int | None = None
    questra_list_shape: str = "array"
    tokens: frozenset[str] | None = None
    read_only_tokens: frozenset[str] = frozenset()  # accepted for listing; every write answers 403
    retry_after: float = 1.0
    log_requests: bool = False
    rate_limit_rps: float = 0.0
    rate_limit_burst: float = 0.0
    rate_limit_scope: str = "org"
    rate_limits: dict[str, float] = field(default_factory=dict)
    clock_offset: float = 0.0  # seconds the APIs' clock is off the real time (negative: behind)
