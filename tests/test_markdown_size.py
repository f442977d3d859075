"""Every Markdown output fits in a GitHub comment (65,536 characters; keyform writes at most
`comment.MAX_MARKDOWN`), with what was left out counted; the text outputs stay complete.

A review found a plan whose one list diff (3,000 hosts edited outside keyform) made a 252 KB
comment, which GitHub refused, and key and usage reports that listed thousands of keys.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from harness.project import Project
from keyform.durations import format_time
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from keyform.plan import Action, AttrChange, Change, Plan
from keyform.remote import InstanceSnapshot, RemoteKey, RemoteSnapshot
from keyform.render.comment import MAX_MARKDOWN
from keyform.render.markdown import render_markdown as plan_markdown
from keyform.render.text import render_text as plan_text
from keyform.render.usage import render_markdown as usage_markdown
from keyform.state import State
from keyform.usage import build_report
from tests import gfm

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_a_list_edited_outside_keyform_is_shown_in_part_in_markdown_and_whole_in_text(
        tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url, env={"AV": "an-auth-value-0123"})
    project.manifest.write_text(
        f"version: 1\nproviders:\n  tq: {{type: textql, base_url: '{emulator.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
        "keys:\n  t1: {provider: tq, description: t one, hosts: [a.example], auth_value: {env: AV}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    hosts = [f"h{i:05}.{'a' * 60}.example" for i in range(3000)]
    emu_control.patch_textql(project.state()["keys"]["t1"]["remote_id"], hosts=hosts)

    md = project.run("plan", "--format", "markdown")
    assert md.exit_code == 0, md.output
    assert len(md.stdout) < MAX_MARKDOWN, len(md.stdout)  # was 252 KB
    assert "hosts" in md.stdout and re.search(r"… and 2,9\d\d more \(", md.stdout), md.stdout[-3000:]
    text = project.run("plan")
    assert text.exit_code == 0 and all(h in text.stdout for h in (hosts[0], hosts[1500], hosts[-1]))


def _big_change(i: int) -> Change:
    before = [f"host-{i}-{j}.example" for j in range(200)]
    return Change(address=f"key-{i:03}", action=Action.UPDATE, provider="tq", provider_type="textql",
                  reasons=("hosts changed; " + "x" * 2_000,),
                  attrs=(AttrChange("hosts", before, [*before[::2], "new.example"]),
                         AttrChange("headers", {f"X-{j}": "v" * 400 for j in range(100)}, {"X-0": "w"})))


def test_a_plan_of_large_diffs_fits_in_a_comment_with_the_rest_counted() -> None:
    notes = tuple(f"note {i}: " + "n" * 900 for i in range(200))
    plan = Plan(changes=tuple(_big_change(i) for i in range(60)), notes=notes)
    md = plan_markdown(plan)
    assert len(md) <= MAX_MARKDOWN
    assert re.search(r"> \*…and \d+ more notes: `keyform plan`", md)
    details = md.count("<details>")
    assert 0 < details < 40 and f"*Details of the other {60 - details} changes are omitted here; " in md
    assert md.count("```diff") == md.count("</details>") == details  # no block was cut in the middle
    assert "more (" in md  # the 200-element lists are cut per diff, and counted
    text = plan_text(plan)
    assert "host-59-199.example" in text and len(text) > 10 * MAX_MARKDOWN  # the text plan is whole


def test_a_usage_report_of_thousands_of_unmanaged_keys_fits_in_a_comment() -> None:
    keys = {f"ak_{i:05}": RemoteKey(id=f"ak_{i:05}", attrs={"name": f"key {i} " + "n" * 80},
                                    created_at=format_time(NOW - timedelta(days=i % 90)), usage_reported=True)
            for i in range(5_000)}
    snap = RemoteSnapshot({"qp": InstanceSnapshot(keys)}, refreshed=True)
    report = build_report(State.new(), snap, NOW, unmanaged=True, provider_types={"qp": "questra"})
    md = usage_markdown(report)
    assert len(md) <= MAX_MARKDOWN
    match = re.search(r"\*…and ([\d,]+) more keys, too many for one comment", md)
    assert match is not None
    rows = gfm.cells(md, "keyform import")
    assert rows and all(len(cells) == 6 for cells in rows)
    assert len(rows) + int(match[1].replace(",", "")) == 5_000
