"""A plug-in provider's call is waited for twice its instance's `deadline` at most (`keyform.bounded`),
a bound meant for a call that hangs. But one call of a plug-in may be many HTTP requests through
keyform's `HttpClient`, each within the deadline: a listing of many pages. Their whole time was
counted: a plug-in listing 4 pages from an API answering in 0.6 s, under `deadline: 1s`, failed
`plan` with `did not return within 2s` while every page came on time (a large account's listing,
100 pages of 1.5 s under the default 60 s deadline, the same). An answer the API accepted is
progress: the bound counts from the last one. A call that hangs still ends by it
(tests/test_plugin_call_never_returns.py). Real processes; the plug-in is a distribution on
PYTHONPATH talking HTTP to the emulator on 127.0.0.1."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from tests import fakedist

PLUGIN = fakedist.QUESTRA_WRAPPER + '''

class Paging(Wrapped):
    def list(self):
        keys = []
        for _ in range(4):  # four pages, each one request
            keys = self.inner.list()
        return keys


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return Paging(questra_client(config, token, timeout=timeout, max_retries=max_retries))


PAGING = questra_type("paging-q", _open, "test plug-in: pages")
'''


def test_a_listing_of_pages_each_on_time_is_not_overdue(tmp_path: Path,
                                                         make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(latency_ms=600)
    env = fakedist.install(tmp_path / "site", "kf-paging", "1.0", "[keyform.providers]\npaging-q = kf_paging:PAGING\n",
                           "kf_paging", PLUGIN)
    project = Project(tmp_path / "p", emulator.url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: paging-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
          deadline: 1s
        """), "  "), "k0:\n  provider: pp\n  name: k0\n")
    res = project.run_process("plan", "--detailed-exitcode", env=env, timeout=30)
    assert "did not return" not in res.stderr, res.stderr
    assert res.exit_code == 2, res.tail()
