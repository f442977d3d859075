"""Outside text never drives a terminal, a Markdown pull-request comment or a Mermaid graph.

Text in every output can come from a contributor's manifest (a policy message, an entry name, a
header name) or from an API (an id, a description, an error message). An adversarial pass found
each of these reaching the reviewer raw: a policy message that closed the plan's blockquote with
a fake "No changes" heading, an image fetched from anywhere and an @mention; ESC sequences that
cleared the terminal or hid a link; ids and entry names that broke the diff fence; a bidi
override (Trojan Source); a Mermaid edge label that added nodes; a 70,000-character value that made
the comment too long to post. Through the CLI, against the emulator and a hostile API on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from keyform.emulator.client import EmulatorControl
from tests import gfm
from tests.hostile import Reply, Seen, hostile

HOSTILE = ("cc @acme/security-team, see #1\n\n## No changes\n<img src=\"https://evil.example/px.gif\">\n"
           "__Approved by security__ see https://evil.example/x, www.evil.example or ask a@b.example\n"
           "![t](https://evil.example/t.png) \x1b[2J\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ "
           "\u202eevil\u202c\u200b\x9b2J ``` <!--")


def _no_control(text: str) -> None:
    """Nothing that drives a terminal or hides what the text says."""
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b]", text), repr(text[-500:])


def _no_markdown(text: str) -> None:
    """`_no_control`, and no Markdown structure an outsider added: outside text is only ever inside
    a code span or a code block (`tests.gfm`), so no HTML, image, link or GFM autolink (`https://`,
    `www.`, an e-mail address), no emphasis, @mention or issue link, no heading."""
    _no_control(text)
    outside, _ = gfm.split(text)
    for said in ("<img", "<!--", "![", "](", "@acme", "#1", "evil.example", "www.", "__", "a@b"):
        assert said not in outside, (said, outside)
    assert not re.search(r"^#+ No changes", text, re.M), text


def _no_raw(text: str, fmt: str = "markdown") -> None:
    (_no_markdown if fmt == "markdown" else _no_control)(text)


def test_a_policy_message_is_shown_as_text_in_every_plan_format(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("ci-bot: {provider: qp, name: CI bot}\n")
    project.manifest.write_text(project.manifest.read_text() + "policies:\n  naming:\n    severity: warning\n"
                                f"    message: {json.dumps(HOSTILE)}\n    match: {{providers: [questra]}}\n"
                                "    require: {expiry: true}\n")
    for fmt in ("text", "markdown"):
        res = project.run("plan", "--format", fmt)
        assert res.exit_code == 0, res.output
        assert "evil.example" in res.output  # said, as text
        _no_raw(res.output, fmt)
    md = project.run("plan", "--format", "markdown").stdout
    assert md.count("\n| ") >= 2  # the table of changes is still there
    res = project.run("validate")
    assert res.exit_code == 0 and "\x1b" not in res.output


def test_a_hostile_listing_id_description_and_error_are_escaped(tmp_path: Path, emulator: Emulator,
                                                                emu_control: EmulatorControl) -> None:
    with hostile(upstream=emulator.url) as api:
        project = Project(tmp_path, api.url, env={"AV": "an-auth-value-0123"})
        project.manifest.write_text(
            f"version: 1\nproviders:\n  tq: {{type: textql, base_url: '{api.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
            "keys:\n  t1: {provider: tq, description: t one, hosts: [a.example], auth_value: {env: AV}}\n")
        assert project.run("apply", "--auto-approve").exit_code == 0
        key = project.state()["keys"]["t1"]["remote_id"]
        emu_control.patch_textql(key, description=HOSTILE + "x" * 70_000)
        for fmt in ("text", "markdown"):
            res = project.run("plan", "--format", fmt)
            assert res.exit_code == 0 and "description" in res.stdout, res.output
            _no_raw(res.stdout, fmt)
            assert len(res.stdout) < 20_000 and "characters)" in res.stdout  # the value cut, its length said
        assert "\\u202e" in project.run("plan").stdout  # the override shown as what it is

        def bad_id(seen: Seen) -> Reply | None:
            if seen.path != "/v1/api-keys":
                return None
            reply = api._forward(seen)
            doc = json.loads(reply.body)
            doc["apiAccessKeys"][0]["id"] = "tk_1\n```\n## No changes\x1b[2J"
            return Reply(reply.status, json.dumps(doc).encode(), reply.headers)

        api.script = bad_id
        res = project.run("plan")
        assert res.exit_code == 1 and "has an id with a blank, a control or an invisible character" in res.stderr
        _no_control(res.output)

        def error(seen: Seen) -> Reply | None:
            return Reply(500, json.dumps({"message": HOSTILE}).encode()) if seen.path == "/v1/api-keys" else None

        api.script = error
        res = project.run("plan")
        assert res.exit_code == 1, res.output
        assert "\x1b" not in res.output and "\\u001b" in res.output


def test_entry_and_header_names_that_would_break_a_plan_are_refused(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    base = (f"version: 1\nproviders:\n  qp: {{type: questra, base_url: '{emulator.url}', token: {{env: QUESTRA_TOKEN}}, "
            f"org_id: {ORG}}}\n  tq: {{type: textql, base_url: '{emulator.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
            "sinks:\n  js: {type: json, path: out.json}\n  fs: {type: file, dir: out}\n")
    for keys, said in (
            ('keys:\n  a: {provider: qp, sink: {use: js, as: "A\\e[8m\\n```"}}\n', "holds a control or an invisible"),
            ('keys:\n  a: {provider: qp, sink: {use: fs, as: "A\\u202eB"}}\n', "holds a control or an invisible"),
            ('keys:\n  t: {provider: tq, hosts: [a.example], auth_value: {env: AV}, '
             'headers: {"X|k1; k9[APPROVED] --- k0": {env: H}}}\n', "is not an HTTP header name")):
        project.manifest.write_text(base + keys)
        res = project.run("validate")
        assert res.exit_code == 1 and said in res.stderr, res.output
        assert "\x1b" not in res.output


def test_a_saved_plan_s_reasons_cannot_close_the_diff_fence(tmp_path: Path, emulator: Emulator) -> None:
    project = Project(tmp_path, emulator.url)
    project.questra("ci-bot: {provider: qp}\n")
    saved = tmp_path / "p.plan"
    assert project.run("plan", "--out", str(saved)).exit_code == 0
    doc: dict[str, Any] = json.loads(saved.read_text())
    doc["changes"][0]["reasons"] = ["new key\n```\n\n### keyform plan\n\n**No changes.**\n\n<!--"]
    saved.write_text(json.dumps(doc))
    res = project.run("show", str(saved), "--format", "markdown")
    assert res.exit_code == 0, res.output
    fences = [line for line in res.stdout.splitlines() if line.startswith("```")]
    assert fences == ["```diff", "```"], res.stdout
    assert [line for line in res.stdout.splitlines() if line.startswith("##")] == ["### keyform plan"]


def test_report_names_are_text_in_markdown(tmp_path: Path, emulator: Emulator, emu_control: EmulatorControl) -> None:
    project = Project(tmp_path, emulator.url, env={"AV": "an-auth-value-0123"})
    project.manifest.write_text(
        f"version: 1\nproviders:\n  tq: {{type: textql, base_url: '{emulator.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
        "keys:\n  t1: {provider: tq, description: t one, hosts: [a.example], auth_value: {env: AV}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    described = "__Approved by security__ see https://evil.example/x"
    for description in (described, "www.evil.example a@b.example", "![ok](https://evil.example/px.png) @acme #1"):
        emu_control.patch_textql(project.state()["keys"]["t1"]["remote_id"], description=description)
        res = project.run("report", "-f", str(project.manifest), "--format", "markdown")
        assert res.exit_code == 0, res.output
        _no_raw(res.stdout)
        assert description in gfm.split(res.stdout)[1]  # shown as it is, in a code span


def test_joiners_in_names_are_shown_as_they_are() -> None:
    """Emoji sequences and Persian or Indic words use U+200D and U+200C: shown, not escaped."""
    from keyform.render.lines import fmt_value
    from keyform.render.safe import md_text, one_line

    for name in ("👩\u200d💻 Dev laptop", "کلید می\u200cخواهم"):
        assert one_line(name) == name and md_text(name) == f"`{name}`" and fmt_value(name) == json.dumps(
            name, ensure_ascii=False)
    assert one_line("a\u202eb\u200bc") == "a\\u202eb\\u200bc"


@pytest.mark.parametrize("hidden", ["\u00ad", "\U000e0041\U000e0042", "\u180e", "\u206a", "\ufff9", "\u3164", "\ufe00",
                                    "\U000e0100", "\u034f"])
def test_invisible_characters_are_shown_as_escapes_in_every_format(tmp_path: Path, emulator: Emulator,
                                                                     emu_control: EmulatorControl, hidden: str) -> None:
    """A soft hyphen, tag characters (which spell a hidden text), fillers and variation selectors
    reached the output raw: a Markdown plan showed `description = "desc" → "desc"`. Each is now its
    escape (beyond U+FFFF its surrogate pair, as JSON writes it, so `--format json` reads back the
    same), and the emoji selector U+FE0F still shows as it is."""
    from keyform.render.safe import escaped

    project = Project(tmp_path, emulator.url, env={"AV": "an-auth-value-0123"})
    project.manifest.write_text(
        f"version: 1\nproviders:\n  tq: {{type: textql, base_url: '{emulator.url}', token: {{env: TEXTQL_TOKEN}}}}\n"
        "keys:\n  t1: {provider: tq, description: desc, hosts: [a.example], auth_value: {env: AV}}\n")
    assert project.run("apply", "--auto-approve").exit_code == 0
    emu_control.patch_textql(project.state()["keys"]["t1"]["remote_id"], description="de" + hidden + "sc")
    for fmt in ("text", "markdown", "json"):
        res = project.run("plan", "--format", fmt)
        assert res.exit_code == 0, res.output
        assert hidden not in res.stdout, (fmt, res.stdout)
        assert escaped(hidden) in res.stdout, (fmt, res.stdout)
    doc = json.loads(project.run("plan", "--format", "json").stdout)
    [change] = [c for c in doc["changes"] if c["address"] == "t1"]
    assert [a["before"] for a in change["attributes"] if a["name"] == "description"] == ["de" + hidden + "sc"]
    assert escaped("\u2764\ufe0f") == "\u2764\ufe0f"


@pytest.mark.parametrize(("text", "shown"), [
    ("Team \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", None),  # Scotland's flag
    ("\u845b\U000e0100\u98fe\u533a", None),  # 葛󠄀飾区: an ideographic variation selector
    ("\u182e\u180b\u1823", None),  # Mongolian with a free variation selector
    ("\U0001f3f4\U000e0068\U000e0069\U000e007f", "\U0001f3f4\\udb40\\udc68\\udb40\\udc69\\udb40\\udc7f"),  # no flag
    ("api\u200d.questra.ai", "api\\u200d.questra.ai"),
    ("ad\u200cmin", "ad\\u200cmin"),
    ("api.questra\U0001bca1.ai", "api.questra\\ud82f\\udca1.ai"),
    ("\U00013430", "\\ud80d\\udc30"),
])
def test_invisible_characters_are_escaped_except_where_a_script_or_an_emoji_needs_them(
        text: str, shown: str | None) -> None:
    """Found by a review of the escape list: flags, Japanese names and Mongolian were escaped, while
    U+1BCA0-3 and a joiner between ASCII letters (`api\u200d.questra.ai` reads `api.questra.ai`)
    were not."""
    from keyform.render.safe import escaped

    assert escaped(text) == (text if shown is None else shown)


def test_the_ascii_fast_path_escapes_exactly_what_the_full_class_does() -> None:
    """ASCII text is checked with a small class (the full one, with ranges beyond U+FFFF, made a
    3 MB `report --format json` 0.1 s slower): on ASCII the two must agree, character by character."""
    from keyform.render import safe

    for c in map(chr, range(128)):
        assert bool(safe.UNSAFE.match(c)) == bool(safe._ASCII_UNSAFE.match(c)), repr(c)
        assert bool(safe._UNSAFE_OR_BREAK.match(c)) == bool(safe._ASCII_UNSAFE_OR_BREAK.match(c)), repr(c)
    assert safe.escaped("a\x1b[2Jb\x7f") == "a\\u001b[2Jb\\u007f" and safe.blanked("a\tb\x00") == "a?b?"
