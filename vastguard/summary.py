"""Renderers of CI's models (vastguard/verdict.py): the GitHub job summary (Markdown) and `--json`.

Money is rounded to cents here and only here; an unknown amount prints as `unknown` (Markdown) or `null`
(JSON), never as $0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from fleet.costs import cents, money
from vastguard.verdict import PolicyAuditReport, PreviewReport, Violation

ICONS = {"passed": "✅", "advisory": "⚠️", "denied": "❌", "failed": "❌"}


def dollars(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${cents(value):,.2f}"


def delta(before: Decimal | None, after: Decimal | None) -> str:
    if before is None or after is None:
        return "unknown"
    diff = cents(after) - cents(before)
    return f"{'-' if diff < 0 else '+'}${abs(diff):,.2f}"


def to_json(report: PreviewReport | PolicyAuditReport) -> str:
    return report.model_dump_json(indent=2) + "\n"


def _violations(team: str, heading: str, found: Sequence[Violation]) -> list[str]:
    out = ["", f"### {team}: {heading}", ""]
    for v in found:
        where = f" ({v.resource})" if v.resource else ""
        out.append(f"- **[{v.level}] {v.policy}**{where}: {v.message}")
    return out


KEY_WORDS = {"preview": "its read-only preview key (from the platform stack)",
             "deploy": "its deploy key (from the platform stack)", "own": "its own key (vastai:apiKey)",
             "none": "no Vast key"}


def judged_by(r: PreviewReport) -> str | None:
    """Which rules judged and with which key, for the job summary; None when the report does not say."""
    if r.rules is None and r.key is None:
        return None
    commit = r.rules.commit[:12] if r.rules is not None and r.rules.commit else "unknown"
    rules = ("unknown rules" if r.rules is None else
             f"judged by the base's rules (commit {commit}), not the pull request's" if r.rules.source == "base"
             else f"judged by this checkout's rules (commit {commit})")
    return f"{r.team}: {rules}; previewed with {KEY_WORDS[r.key or 'none']}."


def preview_markdown(reports: Sequence[PreviewReport]) -> str:
    out = ["## vastguard preview", "",
           "| team | verdict | changes | $/h before -> after | $/day before -> after | $/month before -> after |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in reports:
        changes = ", ".join(f"{n} {op}" for op, n in sorted(r.changes.items()) if op != "same") or "none"
        b, a = r.cost.before, r.cost.after
        cols = [f"{dollars(getattr(b, p))} -> {dollars(getattr(a, p))} ({delta(getattr(b, p), getattr(a, p))})"
                for p in ("hourly", "daily", "monthly")]
        out.append(f"| {r.team} | {ICONS[r.verdict]} {r.title} | {changes} | " + " | ".join(cols) + " |")
    lines = [line for r in reports if (line := judged_by(r))]
    if lines:
        out += ["", *lines]
    for r in reports:
        unknown = sorted(set(r.cost.before.unknown_instances) | set(r.cost.after.unknown_instances))
        if unknown:
            out += ["", f"{r.team}: the price of {', '.join(unknown)} is not known yet, so the totals that include "
                        "it are shown as unknown, not as $0."]
        if r.violations:
            out += _violations(r.team, "policy report", r.violations)
        if r.errors and not r.violations:
            out += ["", f"### {r.team}: preview failed", "", "```", *r.errors, "```"]
    return "\n".join(out) + "\n"


def policy_audit_markdown(reports: Sequence[PolicyAuditReport]) -> str:
    out = ["## vastguard nightly policy audit", "",
           "The policy pack run against each stack's current state: what no longer complies since its last deploy "
           "(an exception that expired, a limit lowered).", "",
           "| team | result | mandatory | advisory |", "| --- | --- | --- | --- |"]
    for r in reports:
        mandatory = sum(v.level == "mandatory" for v in r.violations)
        out.append(f"| {r.team} | {ICONS[r.verdict]} {r.title} | {mandatory} | {len(r.violations) - mandatory} |")
    for r in reports:
        if r.violations:
            out += _violations(r.team, "findings", r.violations)
        if r.errors:
            out += ["", f"### {r.team}: audit failed", "", "```", *r.errors, "```"]
    return "\n".join(out) + "\n"


def deploy_markdown(team: str, outputs: Mapping[str, Any], ok: bool, *, key: str | None = None,
                    commit: str | None = None) -> str:
    cost = outputs.get("estimated_cost") if ok else None
    fleet = outputs.get("fleet") or {}
    status = "✅ deployed" if ok else "❌ `pulumi up` failed (see the log)"

    def amount(period: str) -> str:
        value = cost.get(period) if isinstance(cost, Mapping) else None
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return dollars(money(value))
        return "unknown"

    count = str(len(fleet)) if ok else "unknown"
    return ("## vastguard deploy\n\n| team | result | instances | $/h | $/day | $/month |\n"
            "| --- | --- | --- | --- | --- | --- |\n"
            f"| {team} | {status} | {count} | {amount('hourly')} | {amount('daily')} | {amount('monthly')} |\n"
            + (f"\n{team}: judged by the rules of commit {commit[:12] if commit else 'unknown'}; ran with "
               f"{KEY_WORDS[key]}.\n" if key is not None else ""))
