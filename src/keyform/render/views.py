"""How a command's results reach the terminal, as Terraform's `command/views`: one view per output
format, chosen once per command (`view(fmt)`), so no command body branches on its
`--format`. A view only writes; `keyform.operations` decides and the renderers beside this module
format. Warnings and errors go through `keyform.clikit.print_diagnostics` in every view.

Renderers are imported on first use: `keyform show` reads no state and must not pull in the applier.
"""

from __future__ import annotations

import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, TextIO

import click

from keyform.clikit import print_diagnostics
from keyform.errors import Diagnostic

if TYPE_CHECKING:
    from keyform.applier import ApplyEvent, ApplyReport
    from keyform.plan import Change, Plan
    from keyform.providers.ratelimit import RateEvent


class View(ABC):
    """What every format shares: diagnostics, and the lines of an interrupted apply (stderr).
    Each format implements `plan`, `event`, `rate` and `summary`."""

    # where a confirmation question is asked: stderr when stdout carries a document a program reads
    asks_on_stderr: ClassVar[bool] = False

    def __init__(self, color: bool = False) -> None:
        self.color = color  # stdout is a terminal that takes colour
        self.unsaved = False  # the plan apply made said the state did not record an interrupted apply yet

    def diagnostics(self, diagnostics: Iterable[Diagnostic]) -> None:
        print_diagnostics(diagnostics)

    @abstractmethod
    def plan(self, plan: Plan) -> None:
        """The plan as this format shows it (`keyform plan`, `keyform show`)."""

    def saved(self, path: str) -> None:  # noqa: B027 (an optional hook: most formats say nothing)
        """After `plan --out PATH` wrote the plan (only the text view says so)."""

    # --- apply and destroy

    def planned(self, plan: Plan) -> None:
        """The plan apply made itself, before asking."""
        self.unsaved = plan.unsaved
        self.plan(plan)

    def applying_saved(self, plan: Plan) -> None:
        """A saved plan, about to be applied as it was made: not shown again (`plan --out` showed it)."""
        self.unsaved = plan.unsaved

    def confirming(self) -> None:  # noqa: B027 (an optional hook: most formats say nothing)
        """Just before the confirmation question."""

    @abstractmethod
    def event(self, event: ApplyEvent) -> None:
        """One change's progress (started, done, failed, skipped)."""

    @abstractmethod
    def rate(self, event: RateEvent) -> None:
        """A provider instance was rate-limited (its pause and concurrency)."""

    @abstractmethod
    def summary(self, report: ApplyReport, *, destroy: bool = False) -> None:
        """The apply's (or destroy's) last word."""

    def nothing_to_apply(self, *, destroy: bool = False) -> None:  # noqa: B027 (an optional hook)
        """The plan apply made has no changes (it said so): nothing ran, so `summary` was not called.
        The state records what an interrupted apply did now, if the plan said it did not (`unsaved`)."""

    def interrupted(self, report: ApplyReport) -> None:
        from keyform.render.progress import interrupted_lines

        for line in interrupted_lines(report):
            click.echo(line, err=True)

    def abandoned(self, in_flight: list[Change]) -> None:
        from keyform.render.progress import abandoned_lines

        for line in abandoned_lines(in_flight):
            click.echo(line, err=True)


def _write(stream: TextIO, line: str) -> None:
    # plain writes: click.echo re-checks the terminal on every call, which the scheduler thread
    # (that reports progress) pays once per change; one write per line (worker threads)
    stream.write(line + "\n")
    stream.flush()


class TextView(View):
    """For people: the text plan, progress lines (failures on stderr), a summary line."""

    def plan(self, plan: Plan) -> None:
        from keyform.render.text import render_text

        click.echo(render_text(plan, color=self.color), nl=False)

    def saved(self, path: str) -> None:
        import shlex

        from keyform.render.safe import one_line

        shown = one_line(path)  # (a newline or an escape in the path: shown, never acted on)
        command = shlex.quote(path) if shown == path else shown
        click.echo(f"\nSaved the plan to {shown}. To perform exactly these actions, run:\n  keyform apply {command}")

    def confirming(self) -> None:
        click.echo("")

    def event(self, event: ApplyEvent) -> None:
        from keyform.applier import LOST_LOCK
        from keyform.render.progress import event_text

        if event.kind == "skipped" and event.message == LOST_LOCK:  # the lost lock's error names them all, in
            return  # one line (`operations._lost_lock_message`): once one line each, 1,000 for 1,000 changes
        _write(sys.stderr if event.kind in ("failed", "skipped") else sys.stdout, event_text(event))

    def rate(self, event: RateEvent) -> None:
        from keyform.render.progress import rate_event_text

        _write(sys.stdout, rate_event_text(event))

    def summary(self, report: ApplyReport, *, destroy: bool = False) -> None:
        from keyform.render.progress import summary_text

        click.echo("")
        click.echo(summary_text(report, destroy=destroy, recorded=self.unsaved))

    def nothing_to_apply(self, *, destroy: bool = False) -> None:
        # the plan's summary said "`keyform apply` records it": say that it did (it said nothing more)
        if self.unsaved:
            from keyform.applier import ApplyReport

            self.summary(ApplyReport(), destroy=destroy)


class MarkdownView(TextView):
    """A plan as a pull-request comment (`plan` and `show` only)."""

    def plan(self, plan: Plan) -> None:
        from keyform.render.markdown import render_markdown

        click.echo(render_markdown(plan), nl=False)

    def saved(self, path: str) -> None:
        pass


class JSONView(View):
    """For pipelines: the plan document (schemas/plan.schema.json), then one JSON event per line
    (schemas/apply-events.schema.json), the last one a `change_summary` (all zero when there is
    nothing to change); not after a second Ctrl-C (`apply_abandoned` events end it) or a refusal
    before any change started (the reason is on stderr)."""

    asks_on_stderr = True  # stdout is the JSON stream

    def plan(self, plan: Plan) -> None:
        click.echo(plan.dumps(inputs=False), nl=False)

    def planned(self, plan: Plan) -> None:
        self.unsaved = plan.unsaved
        click.echo(json.dumps({"type": "planned", "plan": plan.to_json(inputs=False)}))

    def event(self, event: ApplyEvent) -> None:
        from keyform.render.progress import event_json

        _write(sys.stdout, event_json(event))

    def rate(self, event: RateEvent) -> None:
        from keyform.render.progress import rate_event_json

        _write(sys.stdout, rate_event_json(event))

    def summary(self, report: ApplyReport, *, destroy: bool = False) -> None:
        from keyform.render.progress import summary_json

        # (the state records an interrupted apply now: said as the text's last line says it, since a
        # saved plan's apply has no `planned` event whose `state.unsaved_changes` would tell)
        click.echo(summary_json(report, recorded=self.unsaved))

    def abandoned(self, in_flight: list[Change]) -> None:
        """The lines on stderr, and the end of each change in flight: the stream's last events (the
        process gives up: no `change_summary` follows)."""
        from keyform.render.progress import abandoned_json

        super().abandoned(in_flight)
        for change in in_flight:
            _write(sys.stdout, abandoned_json(change))

    def nothing_to_apply(self, *, destroy: bool = False) -> None:
        from keyform.applier import ApplyReport

        self.summary(ApplyReport(), destroy=destroy)  # all zero, ok: a pipeline reads the same last line


VIEWS: dict[str, type[View]] = {"text": TextView, "markdown": MarkdownView, "json": JSONView}


def view(fmt: str, color: bool = False) -> View:
    """The view of a `--format` value (text, markdown or json)."""
    return VIEWS[fmt](color)
