"""Apply progress, as text lines for people or JSON-lines events for pipelines (Terraform's
`-json` UI names: apply_start, apply_complete, apply_errored, change_summary). The JSON events
follow schemas/apply-events.schema.json."""

from __future__ import annotations

from typing import Any

from keyform.applier import ApplyEvent, ApplyReport
from keyform.plan import Action, Change
from keyform.render.lines import stale_clause
from keyform.render.safe import json_doc, one_line

VERBS = {"create": ("Creating", "created"), "replace": ("Replacing", "replaced"),
         "update": ("Updating", "updated"), "delete": ("Deleting", "deleted")}
JSON_TYPES = {"start": "apply_start", "done": "apply_complete", "failed": "apply_errored", "skipped": "apply_skipped",
              "abandoned": "apply_abandoned"}


def event_text(event: ApplyEvent) -> str:
    change = event.change
    if change.deposed:
        start, done = "Revoking", "revoked"
    elif change.stale:
        start, done = "Removing", "removed"
    else:
        start, done = VERBS.get(change.action.value, ("Working on", "done"))
    if event.kind == "start":
        return f"{change.key}: {start}..."
    # a message may quote a server or a sink helper: shown escaped (`safe.one_line`), as errors are
    if event.kind == "done" and change.stale and event.message:  # nothing was removed after all: why
        return f"{change.key}: {one_line(event.message)}"
    if event.kind == "done":
        ident = f" [id={one_line(event.remote_id)}]" if event.remote_id else ""  # an API chose it
        return f"{change.key}: {done} after {event.elapsed:.1f}s{ident}"
    if event.kind == "failed":
        return f"{change.key}: failed after {event.elapsed:.1f}s: {one_line(event.message or '')}"
    return f"{change.key}: {one_line(event.message or '')}"


def event_json(event: ApplyEvent) -> str:
    change = event.change
    doc: dict[str, Any] = {"type": JSON_TYPES.get(event.kind, event.kind), "address": change.address,
                           "action": change.action.value, "deposed": change.deposed,
                           **remote_ids(event)}
    if change.stale:  # the change removes a copy of the key's secret from `sink`; the key stays
        doc["stale"], doc["sink"] = True, change.sink
    if event.kind not in ("start", "abandoned"):  # (an abandoned change was not waited for: no time)
        doc["elapsed_seconds"] = round(event.elapsed, 3)
    if event.message:
        doc["message"] = event.message
    return json_doc(doc)


def remote_ids(event: ApplyEvent) -> dict[str, str | None]:
    """`remote_id`: the key the change acts on, or issued (a create or replace: the new key, known
    once it completes); `previous_remote_id`: the key a replace supersedes (else null)."""
    change = event.change
    if change.action in (Action.CREATE, Action.REPLACE) and not change.deposed:
        return {"remote_id": event.remote_id,
                "previous_remote_id": change.remote_id if change.action is Action.REPLACE else None}
    return {"remote_id": change.remote_id, "previous_remote_id": None}
def rate_event_text(event: Any) -> str:
    """`questra-prod: rate-limited, waiting 1.0 s (concurrency 16 → 8)` for a `RateEvent`."""
    window = (f"concurrency {event.concurrency_before} → {event.concurrency_after}"
              if event.concurrency_after != event.concurrency_before else f"concurrency {event.concurrency_after}")
    from keyform.providers.ratelimit import seconds_text

    rate = f", {event.rate:.1f} requests/s" if event.rate is not None else ""
    return f"{event.instance}: rate-limited, waiting {seconds_text(event.wait)} ({window}{rate})"


def rate_wait_text(wait: Any) -> str:
    """A `RateWait` (a plan's listing waiting on a rate limit), for stderr: `questra-prod: waiting
    50.0 s for its rate limit: the API refused a call (429) and asked to wait; Ctrl-C stops`."""
    from keyform.providers.ratelimit import seconds_text

    head = f"{one_line(wait.instance)}: waiting {seconds_text(wait.wait)}"
    if wait.cause == "paused":
        return f"{head} for its rate limit: the API refused a call ({wait.status}) and asked to wait; Ctrl-C stops"
    limit = f" (its rate_limit {wait.configured})" if wait.configured is not None else ""
    rate = f" of {wait.rate:.3g}/s" if wait.rate is not None else ""
    return f"{head} for the next call's turn at its send rate{rate}{limit}; Ctrl-C stops"


def rate_event_json(event: Any) -> str:
    return json_doc({"type": "rate_limited", "provider": event.instance, "status": event.status,
                     "wait_seconds": round(event.wait, 3), "concurrency_before": event.concurrency_before,
                     "concurrency_after": event.concurrency_after,
                     "rate_per_second": None if event.rate is None else round(event.rate, 2)})


def rate_lines(report: ApplyReport) -> list[str]:
    """One line per provider instance that was rate-limited (or has a configured limit)."""
    lines = []
    for r in report.rate:
        limit = f"limit {r.configured}, " if r.configured else ""
        broken = "; stopped sending: it kept refusing calls for their rate" if r.broken else ""
        lines.append(f"  {r.instance}: {limit}{refusals(r)} received, {r.paused_seconds:.1f} s paused, "
                     f"concurrency {r.concurrency} at the end{broken}")
    return ["Rate limits:", *lines] if lines else []


def refusals(stats: Any) -> str:
    """The refusals for the rate a `RateStats` counts, by status: `3 × 429`, `2 × 503`,
    `4 × 429 + 1 × 503` (TextQL refuses with a 503 `resource_exhausted` behind some proxies)."""
    by_status = stats.by_status or ((429, stats.throttled),)
    return " + ".join(f"{n} × {status}" for status, n in by_status)


def rate_json(report: ApplyReport) -> list[dict[str, Any]]:
    return [{"provider": r.instance, "throttled": r.throttled,
             "throttled_by_status": {str(status): n for status, n in (r.by_status or ((429, r.throttled),)) if n},
             "paused_seconds": r.paused_seconds,
             "concurrency": r.concurrency, "rate_per_second": r.rate,
             "rate_limit": None if r.configured is None else str(r.configured), "stopped_sending": r.broken}
            for r in report.rate]


def counts(report: ApplyReport) -> dict[str, int]:
    d = report.done
    return {"created": d.get("create", 0), "updated": d.get("update", 0), "replaced": d.get("replace", 0),
            "deleted": d.get("delete", 0), "stale_copies_removed": d.get("stale", 0),
            "failed": len(report.failed) + len(report.skipped)}


# the end of an apply's last line when all it changed was the state's record of an interrupted apply
RECORDED = "the state now records what the interrupted apply did."


def summary_text(report: ApplyReport, *, destroy: bool = False, recorded: bool = False) -> str:
    """The last line: the same counts as the plan's (a replace's revocation of the old key is
    part of the replace), or `Destroy complete: ...` for `keyform destroy`; `recorded` (as for
    `summary_json`): an apply that changed nothing else says it recorded the interrupted apply."""
    c = counts(report)
    stale = stale_clause(c["stale_copies_removed"], "removed")
    if destroy:
        head = "Destroy complete" if report.ok else "Destroy failed"
        line = f"{head}: {c['deleted']} deleted{stale}, {c['failed']} failed."
    else:
        head = "Apply complete" if report.ok else "Apply failed"
        line = (f"{head}: {c['created']} created, {c['updated']} updated, {c['replaced']} replaced, "
                f"{c['deleted']} deleted{stale}, {c['failed']} failed.")
    if recorded and report.ok and not any(c.values()):
        line = line.rstrip(".") + "; " + RECORDED
    return "\n".join([line, *rate_lines(report)])


def summary_json(report: ApplyReport, *, recorded: bool = False) -> str:
    """The `change_summary` event; `recorded`: the plan applied carried what an interrupted apply
    did and the state did not record yet (`Plan.unsaved`), recorded now (`recorded_interrupted_apply`)."""
    return json_doc({"type": "change_summary", "ok": report.ok, **counts(report),
                     "errors": [{"address": c.key, "message": m} for c, m in report.failed + report.skipped],
                     "rate_limits": rate_json(report),
                     **({"not_started": [c.address for c in report.not_started]} if report.not_started else {}),
                     **({"recorded_interrupted_apply": True} if recorded else {})})


def interrupted_lines(report: ApplyReport) -> list[str]:
    """After one Ctrl-C, or once the state's store failed (`Stopped`): what was not started (what
    finished was reported change by change)."""
    left = report.not_started
    head = "Interrupted" if report.interrupted else "Stopped"
    if not left:
        return [f"{head}: every change had started; those that finished are listed above."]
    counts: dict[str, int] = {}
    for c in left:
        verb = "revoke" if c.deposed else "remove" if c.stale else c.action.value
        counts[verb] = counts.get(verb, 0) + 1
    summary = ", ".join(f"{n} {verb}" for verb, n in sorted(counts.items()))
    shown = ", ".join(c.key for c in left[:20]) + (f", and {len(left) - 20} more" if len(left) > 20 else "")
    return [f"{head}: {len(left)} change(s) not started ({summary}): {shown}."]


def abandoned_lines(in_flight: list[Change]) -> list[str]:
    """After a second Ctrl-C: the changes left in flight, and what the next apply does about them."""
    if not in_flight:
        return ["Interrupted twice: no change was in flight."]
    return ["Interrupted twice: stopped waiting for the changes in flight:",
            *(f"  {c.key}: {abandoned_outcome(c)}" for c in in_flight)]


def abandoned_outcome(change: Change) -> str:
    """What became of a change left in flight by a second Ctrl-C: unknown, and the next apply's part."""
    if change.action in (Action.CREATE, Action.REPLACE):
        return (f"{change.action.value} in flight; if it made a key, the next `keyform apply` revokes it (as the "
                "orphan of an interrupted create)")
    verb = "revoke" if change.deposed else "remove" if change.stale else change.action.value
    return f"{verb} in flight; the next `keyform apply` repeats it if it did not finish"


def abandoned_json(change: Change) -> str:
    """The `apply_abandoned` event of a change left in flight by a second Ctrl-C: the end of its
    `apply_start`, its outcome unknown (the journal holds it; the next apply recovers it)."""
    return event_json(ApplyEvent("abandoned", change, message=abandoned_outcome(change)))
