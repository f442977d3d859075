"""Apply progress, as text lines for people or JSON-lines events for pipelines (Terraform's
`-json` UI names: apply_start, apply_complete, apply_errored, change_summary)."""

from __future__ import annotations

import json
from typing import Any

from keyform.applier import ApplyEvent, ApplyReport

VERBS = {"create": ("Creating", "created"), "replace": ("Replacing", "replaced"),
         "update": ("Updating", "updated"), "delete": ("Deleting", "deleted")}
JSON_TYPES = {"start": "apply_start", "done": "apply_complete", "failed": "apply_errored", "skipped": "apply_skipped"}


def event_text(event: ApplyEvent) -> str:
    change = event.change
    start, done = ("Revoking", "revoked") if change.deposed else VERBS.get(change.action.value, ("Working on", "done"))
    if event.kind == "start":
        return f"{change.key}: {start}..."
    if event.kind == "done":
        return f"{change.key}: {done} after {event.elapsed:.1f}s"
    if event.kind == "failed":
        return f"{change.key}: failed after {event.elapsed:.1f}s: {event.message}"
    return f"{change.key}: {event.message}"


def event_json(event: ApplyEvent) -> str:
    change = event.change
    doc: dict[str, Any] = {"type": JSON_TYPES.get(event.kind, event.kind), "address": change.address,
                           "action": change.action.value, "deposed": change.deposed, "remote_id": change.remote_id}
    if event.kind != "start":
        doc["elapsed_seconds"] = round(event.elapsed, 3)
    if event.message:
        doc["message"] = event.message
    return json.dumps(doc, ensure_ascii=False)


def rate_event_text(event: Any) -> str:
    """`questra-prod: rate-limited, waiting 1.0 s (concurrency 16 → 8)` for a `RateEvent`."""
    window = (f"concurrency {event.concurrency_before} → {event.concurrency_after}"
              if event.concurrency_after != event.concurrency_before else f"concurrency {event.concurrency_after}")
    rate = f", {event.rate:.1f} requests/s" if event.rate is not None else ""
    wait = f"{event.wait:.1f}" if event.wait >= 1 else f"{event.wait:.2f}"
    return f"{event.instance}: rate-limited, waiting {wait} s ({window}{rate})"


def rate_event_json(event: Any) -> str:
    return json.dumps({"type": "rate_limited", "provider": event.instance, "status": event.status,
                       "wait_seconds": round(event.wait, 3), "concurrency_before": event.concurrency_before,
                       "concurrency_after": event.concurrency_after,
                       "rate_per_second": None if event.rate is None else round(event.rate, 2)}, ensure_ascii=False)


def rate_lines(report: ApplyReport) -> list[str]:
    """One line per provider instance that was rate-limited (or has a configured limit)."""
    lines = []
    for r in report.rate:
        limit = f"limit {r.configured}, " if r.configured else ""
        lines.append(f"  {r.instance}: {limit}{r.throttled} × 429 received, {r.paused_seconds:.1f} s paused, "
                     f"concurrency {r.concurrency} at the end")
    return ["Rate limits:", *lines] if lines else []


def rate_json(report: ApplyReport) -> list[dict[str, Any]]:
    return [{"provider": r.instance, "throttled": r.throttled, "paused_seconds": r.paused_seconds,
             "concurrency": r.concurrency, "rate_per_second": r.rate,
             "rate_limit": None if r.configured is None else str(r.configured)} for r in report.rate]


def counts(report: ApplyReport) -> dict[str, int]:
    d = report.done
    return {"created": d.get("create", 0), "updated": d.get("update", 0), "replaced": d.get("replace", 0),
            "deleted": d.get("delete", 0), "failed": len(report.failed) + len(report.skipped)}


def summary_text(report: ApplyReport) -> str:
    c = counts(report)
    head = "Apply complete" if report.ok else "Apply failed"
    return "\n".join([f"{head}: {c['created']} created, {c['updated']} updated, {c['replaced']} replaced, "
                      f"{c['deleted']} deleted, {c['failed']} failed.", *rate_lines(report)])


def summary_json(report: ApplyReport) -> str:
    return json.dumps({"type": "change_summary", "ok": report.ok, **counts(report),
                       "errors": [{"address": c.key, "message": m} for c, m in report.failed + report.skipped],
                       "rate_limits": rate_json(report)})
