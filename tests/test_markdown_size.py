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


def _create(address: str, **attrs: object) -> Change:
    return Change(address=address, action=Action.CREATE, provider="tq", provider_type="textql",
                  reasons=("new key",), attrs=tuple(AttrChange(n, None, v) for n, v in attrs.items()))


def test_a_new_credentials_hosts_are_shown_one_by_one_so_none_hides_past_a_cut() -> None:
    """A new TextQL key fed a production secret, with 23 hosts: shown as one value cut at 500
    characters, the last, `collector.attacker.example` (where the secret may be sent), appeared
    nowhere in the text plan, the Markdown plan or `show`."""
    hosts = [f"api{i:02d}.partner-integration.example.com" for i in range(22)] + ["collector.attacker.example"]
    plan = Plan(changes=(_create("exfil", hosts=hosts, headers={f"X-H{i}": "v" * 40 for i in range(15)}),))
    for rendered in (plan_text(plan), plan_markdown(plan)):
        assert "collector.attacker.example" in rendered and '"X-H9" = ' in rendered, rendered
        assert "characters)" not in rendered
    assert '+ "collector.attacker.example"' in plan_text(plan)


def test_two_long_values_that_differ_at_the_end_show_where_they_differ() -> None:
    """A 600-character header value changed at its tail read `"xxxx…… (603 characters)" →
    "xxxx…… (603 characters)"`: the same on both sides."""
    before, after = "x" * 600, "x" * 597 + "EVIL-HOST"
    plan = Plan(changes=(Change(address="k", action=Action.UPDATE, provider="tq", provider_type="textql",
                                reasons=("description modified outside keyform",), remote_id="tk_1",
                                attrs=(AttrChange("description", before, after),)),))
    for rendered in (plan_text(plan), plan_markdown(plan)):
        assert "EVIL-HOST" in rendered and "(602 characters) → " in rendered, rendered


def test_a_capped_comment_shows_what_revokes_or_changes_a_key_before_new_keys() -> None:
    """The caps were filled in address order: a pull request adding 120 keys pushed a delete and an
    update of a credential's hosts out of the table and the details, leaving only their count."""
    creates = [_create(f"a{i:03d}", description=f"new {i}") for i in range(120)]
    delete = Change(address="zz-prod", action=Action.DELETE, provider="qp", provider_type="questra",
                    reasons=("removed from the manifests",), remote_id="ak_prod")
    update = Change(address="zz-hosts", action=Action.UPDATE, provider="tq", provider_type="textql",
                    reasons=("hosts changed",), remote_id="tk_9",
                    attrs=(AttrChange("hosts", ["api.example"], ["api.example", "evil.example"]),))
    md = plan_markdown(Plan(changes=(*creates, update, delete)))
    table = md.split("<details>")[0]
    assert "`zz-prod`" in table and "`zz-hosts`" in table, table
    assert table.index("`zz-prod`") < table.index("`zz-hosts`") < table.index("`a000`")
    assert '"evil.example"' in md and "…and 22 more" in table


def test_long_elements_and_entries_show_their_end_and_where_they_differ() -> None:
    """Found by a review of the fix above: list elements and map entries still went through the
    cut at 500 characters, so a new host `<600 x>.evil.example` and a header changed at its end read
    the same as before. A cut value now keeps its end, and a changed entry shows where it differs."""
    x = "x" * 600
    plan = Plan(changes=(Change(address="k", action=Action.UPDATE, provider="tq", provider_type="textql",
                                reasons=("modified outside keyform",), remote_id="tk_1",
                                attrs=(AttrChange("hosts", ["api.q.ai", x + ".a.example"], ["api.q.ai", x + ".evil.example"]),
                                       AttrChange("headers", {"X-Long": x + "A"}, {"X-Long": x + "B"}))),))
    for rendered in (plan_text(plan), plan_markdown(plan)):
        assert '.evil.example" (615 characters)' in rendered and 'A" (603 characters) → ' in rendered, rendered
        assert 'B" (603 characters)' in rendered


def test_the_comment_table_names_each_key_whole() -> None:
    """Two valid addresses alike in their first 60 characters were cut to the same cell, and the
    table could not say which key a delete was for."""
    base = "payments-service-production-eu-west-1-primary-database-rotation-key-"
    changes = tuple(Change(address=base + end, action=action, provider="qp", provider_type="questra",
                           reasons=("r",), remote_id="ak_1") for end, action in (("readwrite", Action.DELETE),
                                                                                  ("readonly", Action.REPLACE)))
    table = plan_markdown(Plan(changes=changes)).split("<details>")[0]
    assert f"`{base}readwrite`" in table and f"`{base}readonly`" in table, table
