"""A plug-in's calls run in a thread of keyform's (`keyform.bounded`), each was in a new one: a
plug-in keeping what it may not share per thread (a `requests.Session` in a `threading.local`, a
connection it opened itself) opened it again for every call, a connection and a TLS handshake per
create where a worker's calls had shared one. Each thread that calls a plug-in now has one thread
that runs its calls, for as long as none of them is abandoned: at `--parallelism 2` a plug-in's 20
creates run in the threads of the scheduler's 4 workers, not one each. Real processes; the plug-in is a distribution on PYTHONPATH
talking HTTP to the emulator on 127.0.0.1."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness.project import ORG, Project
from keyform.emulator import Emulator
from tests import fakedist

PLUGIN = fakedist.QUESTRA_WRAPPER + '''
import os
import threading

_local = threading.local()
_lock = threading.Lock()


def _session():
    """A connection per thread, as a plug-in keeps a requests.Session: counted when made."""
    if getattr(_local, "session", None) is None:
        _local.session = object()
        with _lock, open(os.environ["KF_SESSIONS"], "a") as out:
            out.write(f"{threading.get_ident()}\\n")
    return _local.session


class PerThread(Wrapped):
    def list(self):
        _session()
        return self.inner.list()

    def create(self, request):
        _session()
        return self.inner.create(request)


def _open(config, token, org_id, *, timeout=30.0, transport=None, max_retries=5):
    return PerThread(questra_client(config, token, timeout=timeout, max_retries=max_retries))


PER_THREAD = questra_type("per-thread-q", _open, "test plug-in")
'''


def test_a_plugins_calls_from_one_worker_share_its_thread(tmp_path: Path, emulator: Emulator) -> None:
    env = fakedist.install(tmp_path / "site", "kf-per-thread", "1.0",
                           "[keyform.providers]\nper-thread-q = kf_per_thread:PER_THREAD\n", "kf_per_thread", PLUGIN)
    project = Project(tmp_path / "p", emulator.url)
    project._one_provider(textwrap.indent(textwrap.dedent(f"""\
        pp:
          type: per-thread-q
          base_url: {emulator.url}
          token: {{env: QUESTRA_TOKEN}}
          org: {ORG}
        """), "  "), "".join(f"k{i}:\n  provider: pp\n  name: k{i}\n" for i in range(20)))
    sessions = tmp_path / "sessions"
    res = project.run_process("apply", "--auto-approve", "--parallelism", "2", env={**env, "KF_SESSIONS": str(sessions)})
    assert res.exit_code == 0, res.tail()
    made = sessions.read_text().split()
    # the listing's, and one for each of the scheduler's workers (2 x --parallelism), as before the bound
    assert len(made) <= 5, f"{len(made)} sessions for 1 listing and 20 creates at --parallelism 2"
