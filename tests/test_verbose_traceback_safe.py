"""Found by review 97 (stop 41): with `-v`, the traceback printed before the error quoted an API's
reason phrase raw: `403 ^[]0;PWN^G^[[31m...` set the terminal's title and colours (an OSC 8 link
would get through too), while the one-line error showed it as `\\u001b`. The traceback, and each
debug log line, are now escaped (and scrubbed of known secrets) like every other output."""

from __future__ import annotations

from pathlib import Path

from harness.project import Project
from tests.loopback import LoopbackServer, QuietHandler, serving

HOSTILE = "\x1b]0;PWN\x07\x1b[31mNope\x1b]8;;https://evil.example\x07x\x1b]8;;\x07"


class Refusing(QuietHandler):
    def _refuse(self) -> None:
        self.send_response(403, HOSTILE)
        body = b"denied"  # not the API's JSON: the message quotes the reason phrase
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PATCH = _refuse


def test_a_verbose_traceback_shows_a_hostile_reason_phrase_escaped(tmp_path: Path) -> None:
    with serving(LoopbackServer(Refusing)) as api:
        project = Project(tmp_path, api.url)
        project.questra("web:\n  provider: qp\n")
        res = project.run("-v", "plan", "-f", str(project.manifest))
    assert res.exit_code == 1, res.output
    assert "Traceback" in res.stderr and "403" in res.stderr, res.stderr
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr, repr(res.stderr[-2000:])
    assert "\\u001b]0;PWN\\u0007" in res.stderr
