"""A plug-in provider's optional `clock_offset()` is read through the `ForeignProvider` wrapper
since it passes the figure on (dcefbc7), after each listing. Every other call into a plug-in is its
own code run bounded (`keyform.bounded`) with its failures said in one line; this one was called
bare: one that never returned (a HEAD request for the API's `Date` with no timeout) hung `plan`
for ever, and one that called `sys.exit()` ended `plan` with exit code 0 and no plan printed.

The figure is optional: one that fails, or does not come within the instance's bound, is none (the
plan is made without it). Real processes; the plug-in is a distribution on PYTHONPATH talking HTTP
to the emulator on 127.0.0.1."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from harness.project import ORG, Project
from keyform.emulator import Emulator
from tests import fakedist

PLUGIN = fakedist.QUESTRA_WRAPPER + '''
import os
import sys
import threading


class Skewed(Wrapped):
    def clock_offset(self):
        how = os.environ.get("KF_OFFSET", "")
        if how == "hang":
            threading.Event().wait()  # never returns
        if how == "exit":
            sys.exit()
        return self.inner.clock_offset()


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return Skewed(questra_client(config, token, timeout=timeout, max_retries=max_retries))


SKEWED = questra_type("skewed-q", _open, "test plug-in")
'''


@pytest.mark.parametrize("how", ["hang", "exit"])
def test_a_plugin_clock_offset_that_hangs_or_exits_gives_no_figure(tmp_path: Path, emulator: Emulator,
                                                                   how: str) -> None:
    env = fakedist.install(tmp_path / "site", "kf-skewed", "1.0", "[keyform.providers]\nskewed-q = kf_skewed:SKEWED\n",
                           "kf_skewed", PLUGIN)
    project = Project(tmp_path / "p", emulator.url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: skewed-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
          deadline: 1s
        """), "  "), "k0:\n  provider: pp\n  name: k0\n")
    started = time.monotonic()
    res = project.run_process("plan", "--detailed-exitcode", env={**env, "KF_OFFSET": how}, timeout=20)
    assert res.exit_code == 2, res.tail()  # the plan, made without the figure: k0 to create
    assert time.monotonic() - started < 12
    assert "k0" in res.stdout and "create" in res.stdout.lower(), res.stdout
    assert "Traceback" not in res.output and "internal error" not in res.output
    # one that hangs is said without -v (it was at -v only): the check skipped, and what that means;
    # one that fails at once (`sys.exit()`) gives no figure quietly, as a plug-in without it does
    skipped = [line for line in res.output.splitlines() if "clock check" in line]
    if how == "hang":
        assert skipped == [
            "Note: pp: its clock check (the provider type 'skewed-q''s clock_offset()) did not return within 2s "
            "and was skipped: its API's clock is taken to be in step with keyform's, with no allowance for clock "
            "skew (a clock behind keyform's makes its keys' last uses look older than they were)"], res.output
    else:
        assert skipped == [], res.output


def test_a_skipped_clock_check_is_a_note_of_the_usage_report() -> None:
    """`keyform report --idle` / `--unmanaged` say it as the plan does, in place of a skew note."""
    from datetime import datetime, timezone

    from keyform.remote import InstanceSnapshot, RemoteSnapshot
    from keyform.state import State
    from keyform.usage import build_report

    snapshot = RemoteSnapshot({"pp": InstanceSnapshot({}, clock_note="pp: its clock check ... was skipped"),
                               "qp": InstanceSnapshot({}, clock_offset=-7200.0)}, refreshed=True)
    report = build_report(State.new(), snapshot, datetime(2026, 1, 1, tzinfo=timezone.utc),
                          provider_types={"pp": "questra", "qp": "questra"})
    assert report.notes[0] == "pp: its clock check ... was skipped"
    assert report.notes[1].startswith("qp: its clock is 2h behind keyform's"), report.notes
