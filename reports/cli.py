"""`vastguard audit | spend | chargeback | reconcile`: the report commands.

Thin: parse flags, read history through a source, fold it (pure), build the report model (pure), render it.
`register(subparsers)` adds the commands to the `vastguard` parser. Exit codes: 0 done, 1 error (the message
says what to do), 3 reconcile found differences above the threshold (so CI can fail on shadow spend).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from fleet.stack_config import API_KEY_CONFIG
from reports.audit import AuditEventSource, audit_report
from reports.beyond import EventList, budget_audit_events, vast_audit_events
from reports.budgets import BudgetError, daily_budgets
from reports.charges import (
    PLATFORM_KEY_ENV,
    AuditClientFactory,
    ChargesError,
    ClientFactory,
    KeyResolver,
    fetch_charges,
    vast_client_factory,
)
from reports.costing import chargeback_report, month_range, spend_report
from reports.focus import focus_export
from reports.fold import VastClock, fold_stack
from reports.models import InstanceTimeline, StackFold
from reports.pulumi_state import HistoryEntry, StateFormatError
from reports.reconcile import reconcile, window
from reports.render.delimited import audit_csv, invoice_csv, reconcile_csv, spend_csv
from reports.render.document import to_json
from reports.render.focus import focus_csv
from reports.render.markdown import invoice_markdown
from reports.render.svg import daily_spend_svg
from reports.render.table import audit_table, chargeback_table, reconcile_tables, spend_table, to_text
from reports.sources import HistorySource, Runner, SourceError, StackRef, ensure_stacks, open_source
from reports.vast_dates import billing_ends, date_deletes
from vastclient import URL_ENV, VastError
from vastclient.models import AuditEntry, Charge

EXIT_DIFFERENCES = 3
TABLE_WIDTH = 160


class UsageError(ValueError):
    pass


# --- argument types -----------------------------------------------------------------------------------------


def parse_moment(text: str, *, end: bool = False) -> datetime:
    """`YYYY-MM`, `YYYY-MM-DD` or an ISO datetime, UTC unless it says otherwise. As an end bound a month or a
    day means its end (exclusive), so `--until 2026-11-30` includes the 30th."""
    try:
        if len(text) == 7:
            first, after = month_range(text)
            return after if end else first
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date: use YYYY-MM, YYYY-MM-DD or an ISO time like "
                         "2026-11-05T14:30:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_month(text: str) -> str:
    try:
        month_range(text)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return text


PulumiRunner = Callable[[Path, str], Runner]
StackKey = Callable[[str, str], "str | None"]  # (backend URL, stack) -> the stack's read key, or None
"""(project directory, backend URL) -> a runner of the pinned Pulumi CLI: for what only the CLI can do (Pulumi
Cloud history, decrypting a stack secret). The layer that owns the engine passes it to `register` (vastguard/cli.py);
reports/ never builds or starts Pulumi itself."""


def default_backend(local_state: Path | None) -> str:
    """Pulumi's own choice first; else the project's local state directory (as engine.project_env sets it)."""
    url = os.environ.get("PULUMI_BACKEND_URL")
    if url:
        return url
    return f"file://{(local_state or Path.cwd() / '.pulumi-state').resolve()}"


# --- plumbing shared by the commands -----------------------------------------------------------------------


def _pulumi_runner(args: argparse.Namespace, backend: str) -> Runner:
    factory: PulumiRunner | None = args.pulumi_runner
    if factory is None:
        raise UsageError("this needs the Pulumi CLI: run the command as `vastguard ...` (./dev vastguard ...)")
    return factory(Path(args.project_dir), backend)


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[StackRef], None]]:
    """A progress bar on stderr for long histories; silent when not a terminal or disabled."""
    if not enabled or total == 0:
        yield lambda _ref: None
        return
    progress = Progress(TextColumn("reading history {task.fields[stack]}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True)
    with progress:
        task = progress.add_task("history", total=total, stack="")

        def advance(ref: StackRef) -> None:
            progress.update(task, advance=1, stack=str(ref))

        yield advance


def load_folds(source: HistorySource, refs: Sequence[StackRef], *, progress: bool,
               vast_clock: VastClock = "running") -> list[StackFold]:
    total = sum(source.count(ref) for ref in refs) if progress else 0
    actions = source.guard_actions()
    folds = []
    with _progress(progress, total) as advance:
        for ref in refs:
            def entries(ref: StackRef = ref) -> Iterator[HistoryEntry]:
                for entry in source.entries(ref):
                    advance(ref)
                    yield entry

            folds.append(fold_stack(ref.project, ref.stack, entries(), vast_clock=vast_clock, actions=actions))
    return folds


def _source(args: argparse.Namespace) -> tuple[HistorySource, list[StackRef]]:
    backend = args.backend or default_backend(args.local_state)
    runner = None
    if backend.startswith(("https://", "http://")):
        runner = _pulumi_runner(args, backend)
    source = open_source(backend, cli_runner=runner)
    return source, ensure_stacks(source, projects=args.project or (), stacks=args.stack or ())


def _folds(args: argparse.Namespace, *, teams_only: bool = True) -> list[StackFold]:
    """The stacks' folds; `teams_only` leaves out the platform stack (it is in the audit, but spends nothing
    and has no charges of its own to reconcile)."""
    source, refs = _source(args)
    show = not args.no_progress and sys.stderr.isatty()
    folds = load_folds(source, refs, progress=show, vast_clock=args.vast_clock)
    return [f for f in folds if not f.platform] if teams_only else folds


def _now(args: argparse.Namespace) -> datetime:
    return parse_moment(args.now) if args.now else datetime.now(UTC)


def _timelines(folds: Sequence[StackFold], teams: Sequence[str]) -> list[InstanceTimeline]:
    return [tl for f in folds for tl in f.timelines if not teams or tl.team in teams]


def _write(text: str, args: argparse.Namespace, out: TextIO) -> None:
    if args.output:
        Path(args.output).write_text(text)
    else:
        out.write(text)


def _emit_table(renderables: Sequence[Any], args: argparse.Namespace, out: TextIO) -> None:
    if args.output:
        Path(args.output).write_text(to_text(renderables, width=TABLE_WIDTH))
        return
    console = Console(file=out, width=None if out.isatty() else TABLE_WIDTH)
    for item in renderables:
        console.print(item)


# --- commands -----------------------------------------------------------------------------------------------


def _vast_audit_logs(args: argparse.Namespace, teams: Sequence[str],
                     factory: AuditClientFactory) -> dict[str, list[AuditEntry]]:
    """Each team's Vast audit log (its key from VASTGUARD_KEY_<TEAM>) and the platform owner's (the teams'
    account: team creation, credit sent; VASTGUARD_PLATFORM_KEY), when that key is set."""
    resolver = KeyResolver()
    base_url = args.vast_url or os.environ.get(URL_ENV) or None
    keys = {team: resolver(team, []) for team in teams}
    if platform := os.environ.get(PLATFORM_KEY_ENV):
        keys["platform"] = platform
    logs: dict[str, list[AuditEntry]] = {}
    for who, key in keys.items():
        try:
            with factory(key, base_url) as client:
                logs[who] = list(client.audit_logs())
        except VastError as err:
            raise ChargesError(f"reading the Vast audit log of {who} failed: {err}") from None
    return logs


def run_audit(args: argparse.Namespace, out: TextIO | None = None,
              factory: AuditClientFactory = vast_client_factory) -> int:
    out = out or sys.stdout  # resolved per call: tests and callers may swap sys.stdout
    source, refs = _source(args)
    # the platform stack's fold too: who changed teams' access is part of the audit trail
    folds = load_folds(source, refs, progress=not args.no_progress and sys.stderr.isatty(),
                       vast_clock=args.vast_clock)
    transfers, guard = source.budget_records()
    extra: list[AuditEventSource] = [EventList(budget_audit_events(transfers, guard, source.guard_actions()))]
    if args.vast:
        teams = sorted({f.team for f in folds if not f.platform} | set(args.team or ())
                       | {t.intent.team for t in transfers} | {r.team for _, r in guard})
        extra.append(EventList(vast_audit_events(_vast_audit_logs(args, teams, factory), folds, transfers)))
    report = audit_report(folds, generated_at=_now(args),
                          since=parse_moment(args.since) if args.since else None,
                          until=parse_moment(args.until, end=True) if args.until else None,
                          kinds=args.kind or (), teams=args.team or (), sources=extra)
    if args.format == "json":
        _write(to_json(report), args, out)
    elif args.format == "csv":
        _write(audit_csv(report), args, out)
    else:
        _emit_table([audit_table(report)], args, out)
    return 0


def _spend_range(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    if args.month:
        return month_range(parse_month(args.month))
    start = parse_moment(args.since) if args.since else datetime(now.year, now.month, 1, tzinfo=UTC)
    end = parse_moment(args.until, end=True) if args.until else now
    if end <= start:
        raise UsageError(f"--until ({end.isoformat()}) must be after --since ({start.isoformat()})")
    return start, end


def _teams_and_stacks(args: argparse.Namespace, folds: Sequence[StackFold]) -> dict[str, list[str]]:
    stacks_of: dict[str, list[str]] = {team: [] for team in args.team or ()}
    for f in folds:
        if not args.team or f.team in args.team:
            stacks_of.setdefault(f.team, []).append(f.stack)
    return stacks_of


def _key_resolver(args: argparse.Namespace) -> KeyResolver:
    from_stack = None
    if args.keys_from_pulumi:
        backend = args.backend or default_backend(args.local_state)
        runner = _pulumi_runner(args, backend)
        delivered: StackKey | None = getattr(args, "stack_key", None)

        def from_stack(stack: str) -> str | None:
            # A stack taking its keys from the platform holds none in its config: its preview key (billing_read)
            # comes from the platform's envelope, when the job holds the preview secret.
            if delivered is not None and (key := delivered(backend, stack)):
                return key
            try:
                return runner("config", "get", API_KEY_CONFIG, stack=stack).strip() or None
            except RuntimeError:
                return None

    return KeyResolver(from_stack=from_stack)


def _vast_url(args: argparse.Namespace) -> str | None:
    return args.vast_url or os.environ.get(URL_ENV) or None


def _dated_by_vast(args: argparse.Namespace, folds: Sequence[StackFold], timelines: Sequence[InstanceTimeline], *,
                   start: datetime, end: datetime, factory: ClientFactory) -> list[InstanceTimeline]:
    """`timelines` with deletes dated by Vast's charges (`reports.vast_dates`) for every team whose key is at
    hand (`VASTGUARD_KEY_<TEAM>`, or the stack's config with --keys-from-pulumi); others as the fold dated them."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    resolve = _key_resolver(args)
    charges: list[Charge] = []
    for team, stacks in sorted(_teams_and_stacks(args, folds).items()):
        try:
            resolve(team, stacks)
        except ChargesError:
            continue  # no key for this team: its deletes keep the fold's dating (counted as estimated)
        try:
            fetched = fetch_charges({team: stacks}, start_day=first, end_day=last, key_for=resolve,
                                    base_url=_vast_url(args), factory=factory)
        except ChargesError as err:  # the report stands without it; say what was not refined
            print(f"note: {err}; team {team}'s deletes keep Pulumi's dating (--vast-url sets where Vast is)",
                  file=sys.stderr)
            continue
        charges += fetched[team]
    return date_deletes(timelines, billing_ends(charges, window_end=window(first, last)[1]))


def run_spend(args: argparse.Namespace, out: TextIO | None = None,
              factory: ClientFactory = vast_client_factory) -> int:
    out = out or sys.stdout  # resolved per call: tests and callers may swap sys.stdout
    now = _now(args)
    start, end = _spend_range(args, now)
    folds = _folds(args)
    timelines = _dated_by_vast(args, folds, _timelines(folds, args.team or ()), start=start, end=end,
                               factory=factory)
    report = spend_report(timelines, start=start, end=end, now=now, granularity=args.by, generated_at=now)
    if args.format == "json":
        _write(to_json(report), args, out)
    elif args.format == "csv":
        _write(spend_csv(report), args, out)
    else:
        notes = []
        if report.estimated_times:
            notes.append(f"{report.estimated_times} cost slice(s) rest on times estimated from Pulumi's update "
                         "times, not Vast's clock.")
        _emit_table([spend_table(report, detail=args.detail), *notes], args, out)
    return 0


def run_chargeback(args: argparse.Namespace, out: TextIO | None = None,
                   factory: ClientFactory = vast_client_factory) -> int:
    out = out or sys.stdout  # resolved per call: tests and callers may swap sys.stdout
    month = parse_month(args.month)
    now = _now(args)
    folds = _folds(args)
    teams = sorted({f.team for f in folds if not args.team or f.team in args.team} | set(args.team or ()))
    start, end = month_range(month)
    timelines = _dated_by_vast(args, folds, _timelines(folds, args.team or ()), start=start, end=end,
                               factory=factory)
    directory = Path(args.out or f"chargeback-{month}")
    directory.mkdir(parents=True, exist_ok=True)
    console = Console(file=out, width=TABLE_WIDTH if not out.isatty() else None)
    if args.format == "focus":
        export = focus_export(timelines, month=month, now=now, generated_at=now, teams=teams)
        path = directory / f"focus-cost-and-usage-{month}.csv"
        path.write_text(focus_csv(export))
        console.print(f"wrote {len(export.rows)} FOCUS {export.focus_version} cost-and-usage rows to {path}")
        if export.unknown_price_slices:
            console.print(f"{export.unknown_price_slices} slice(s) have an unknown price: not in the file "
                          "(FOCUS's BilledCost cannot be null), and not counted as 0")
        return 0
    budgets = daily_budgets(teams, Path(args.team_files) if args.team_files else _default_team_files(args))
    report = chargeback_report(timelines, month=month, now=now, generated_at=now, teams=teams, budgets=budgets)
    written = []
    for invoice in report.invoices:
        for suffix, text in ((".csv", invoice_csv(invoice)), (".md", invoice_markdown(invoice))):
            path = directory / f"{invoice.team}{suffix}"
            path.write_text(text)
            written.append(path)
    chart = directory / "daily-spend.svg"
    chart.write_text(daily_spend_svg(report))
    document = directory / "chargeback.json"
    document.write_text(to_json(report))
    written += [chart, document]
    console.print(chargeback_table(report))
    console.print(f"wrote {len(written)} files to {directory}/: " + ", ".join(p.name for p in written))
    console.print(f"chart: {chart}")
    return 0


def _default_team_files(args: argparse.Namespace) -> Path:
    """The team files of the project being reported on: `<project dir>/policies/teams`."""
    return Path(args.project_dir) / "policies" / "teams"


def _reconcile_days(args: argparse.Namespace, now: datetime) -> tuple[date, date]:
    if args.month:
        start, end = month_range(parse_month(args.month))
        return start.date(), (end - timedelta(days=1)).date()
    first = parse_moment(args.since).date() if args.since else date(now.year, now.month, 1)
    last = (parse_moment(args.until, end=True) - timedelta(days=1)).date() if args.until else now.date()
    if last < first:
        raise UsageError("--until must not be before --since")
    return first, last


def run_reconcile(args: argparse.Namespace, out: TextIO | None = None,
                  factory: ClientFactory = vast_client_factory) -> int:
    out = out or sys.stdout
    now = _now(args)
    first, last = _reconcile_days(args, now)
    try:
        threshold = Decimal(args.threshold)
    except InvalidOperation:
        raise UsageError(f"--threshold {args.threshold!r} is not an amount of dollars (e.g. 0.01)") from None
    folds = _folds(args)
    charges = fetch_charges(_teams_and_stacks(args, folds), start_day=first, end_day=last,
                            key_for=_key_resolver(args), base_url=_vast_url(args), factory=factory)
    everything = [tl for f in folds for tl in f.timelines]  # all teams: declared elsewhere is not shadow
    ends = billing_ends((c for team in charges.values() for c in team), window_end=window(first, last)[1])
    everything = date_deletes(everything, ends)  # a delete at the moment Vast stopped billing it
    report = reconcile(everything, charges, start_day=first, end_day=last, now=now, threshold=threshold,
                       generated_at=now, include_matches=args.all)
    if args.format == "json":
        _write(to_json(report), args, out)
    elif args.format == "csv":
        _write(reconcile_csv(report), args, out)
    else:
        _emit_table(reconcile_tables(report), args, out)
    differences = [r for r in report.rows if r.status != "match"]
    return EXIT_DIFFERENCES if differences else 0


# --- registration -------------------------------------------------------------------------------------------


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (UsageError, SourceError, StateFormatError, ChargesError, BudgetError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    return run


def _common(parser: argparse.ArgumentParser, pulumi: PulumiRunner | None, local_state: Path | None,
            stack_key: StackKey | None = None) -> None:
    parser.set_defaults(pulumi_runner=pulumi, local_state=local_state, stack_key=stack_key)
    parser.add_argument("--backend", metavar="URL",
                        help="state backend: file://DIR, s3://bucket/prefix?region=..&endpoint=.. or a Pulumi "
                             "Cloud URL (default: $PULUMI_BACKEND_URL, else the project's .pulumi-state)")
    parser.add_argument("--project", action="append", metavar="NAME", help="only this Pulumi project (repeatable)")
    parser.add_argument("--stack", action="append", metavar="NAME", help="only this stack (repeatable)")
    parser.add_argument("--team", action="append", metavar="TEAM", help="only this team (repeatable)")
    parser.add_argument("--now", metavar="TIME",
                        help="the present for instances still rented (default: the clock; give the emulator's "
                             "virtual time when reporting on it)")
    parser.add_argument("--vast-clock", choices=["running", "frozen"], default="running",
                        help="how Vast's clock moves during a Pulumi operation, for dating deletes: running "
                             "(real Vast) or frozen (an emulator whose virtual clock only moves when advanced)")
    parser.add_argument("--project-dir", default=".", metavar="DIR",
                        help="Pulumi project directory, for what needs the Pulumi CLI (default: .)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while reading history")


def _formats(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")


def _vast_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vast-url", metavar="URL", help="Vast.ai API base URL (default: $VAST_URL, else Vast.ai)")
    parser.add_argument("--keys-from-pulumi", action="store_true",
                        help="when VASTGUARD_KEY_<TEAM> is not set: open a team's preview key from the platform "
                             "stack (its stack's vastguard:keyFrom, the job's VASTGUARD_PREVIEW_SECRET[_<TEAM>]) "
                             f"or read it from its stack config ({API_KEY_CONFIG}, needs the stack's passphrase)")


def _range(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="TIME", help="start: YYYY-MM, YYYY-MM-DD or ISO time (UTC)")
    parser.add_argument("--until", metavar="TIME", help="end, inclusive for a day or month: YYYY-MM[-DD] or ISO")


def register(subparsers: Any, *, pulumi: PulumiRunner | None = None, local_state: Path | None = None,
             stack_key: StackKey | None = None) -> None:
    """Add `audit`, `spend`, `chargeback` and `reconcile` to the `vastguard` command line. `pulumi` runs the
    pinned Pulumi CLI (without it, Pulumi Cloud and --keys-from-pulumi say so); `local_state` is the project's
    `.pulumi-state`, the default backend when PULUMI_BACKEND_URL is not set (default: ./.pulumi-state);
    `stack_key(backend, stack)` is a stack's read key delivered from elsewhere (the platform stack's envelopes),
    tried first by --keys-from-pulumi."""
    audit = subparsers.add_parser("audit", help="who changed which instances, when, from which commit",
                                  description="Every update, refresh and destroy of each stack, from its history.")
    _common(audit, pulumi, local_state, stack_key)
    _range(audit)
    audit.add_argument("--kind", action="append", metavar="KIND",
                       help="only this kind: update, refresh, destroy, import, instance.create, credit top-up, "
                            "guard pause, ... (repeatable)")
    audit.add_argument("--vast", action="store_true",
                       help="merge Vast's own audit log of each team (VASTGUARD_KEY_<TEAM>) and of the platform "
                            f"owner ({PLATFORM_KEY_ENV}): what every key did, marked through a stack or not")
    audit.add_argument("--vast-url", metavar="URL", help="Vast.ai API base URL (default: $VAST_URL, else Vast.ai)")
    _formats(audit)
    audit.set_defaults(func=_guarded(run_audit))

    spend = subparsers.add_parser("spend", help="instance-hours and cost per team, per day or month",
                                  description="Spend reconstructed from the checkpoints the stacks' history keeps.")
    _common(spend, pulumi, local_state, stack_key)
    _range(spend)
    spend.add_argument("--month", metavar="YYYY-MM", help="shorthand for --since/--until of one month")
    spend.add_argument("--by", choices=["day", "month"], default="day")
    spend.add_argument("--detail", action="store_true", help="one row per instance")
    _vast_source(spend)
    _formats(spend)
    spend.set_defaults(func=_guarded(run_spend))

    chargeback = subparsers.add_parser(
        "chargeback", help="monthly invoice per team (CSV, Markdown, SVG chart) or FOCUS cost-and-usage rows")
    _common(chargeback, pulumi, local_state, stack_key)
    chargeback.add_argument("--month", required=True, metavar="YYYY-MM")
    chargeback.add_argument("--out", metavar="DIR", help="output directory (default: ./chargeback-YYYY-MM)")
    chargeback.add_argument("--format", choices=["invoices", "focus"], default="invoices",
                            help="invoices: per-team CSV and Markdown, the daily-spend chart and JSON (default); "
                                 "focus: FinOps FOCUS 1.4 cost-and-usage rows as CSV")
    chargeback.add_argument("--team-files", metavar="DIR",
                            help="the teams' policy files, for the daily budgets the chart draws "
                                 "(default: <project dir>/policies/teams)")
    _vast_source(chargeback)
    chargeback.set_defaults(func=_guarded(run_chargeback))

    rec = subparsers.add_parser("reconcile", help="reconstructed spend vs Vast.ai charges; finds shadow spend",
                                description="Compares each team's reconstructed spend with what Vast.ai charged "
                                            "its key; exits 3 when differences exceed the threshold.")
    _common(rec, pulumi, local_state, stack_key)
    _range(rec)
    rec.add_argument("--month", metavar="YYYY-MM")
    rec.add_argument("--threshold", default="0.01", metavar="DOLLARS",
                     help="report per-instance differences larger than this (default 0.01)")
    rec.add_argument("--all", action="store_true", help="also list instances that match")
    _vast_source(rec)
    _formats(rec)
    rec.set_defaults(func=_guarded(run_reconcile))


def main(argv: Sequence[str] | None = None, *, pulumi: PulumiRunner | None = None) -> int:
    """The report commands alone (`python -m reports.cli`, tests); `vastguard` registers them with its runner."""
    parser = argparse.ArgumentParser(prog="vastguard", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), pulumi=pulumi)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
