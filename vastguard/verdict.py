"""CI's verdicts as models, computed from the engine's structured events (never from its text output):
a preview's verdict, violations and cost change, and the nightly policy audit of what already runs.
Renderers (job-summary Markdown, `--json`) are in vastguard/summary.py; the JSON's schema is
vastguard/schemas/ci-report.schema.json.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vastguard.costdiff import CostDiff, FleetEstimate, cost_diff
from vastguard.engine_events import EngineEvent, errors, policy_events, steps, summary

SCHEMA_VERSION = 2
"""Version of the JSON documents `vastguard ci ... --json` prints. 2 added `rules` and `key` to the preview
(optional in the schema, so version-1 documents still validate); bump it on any change."""

Verdict = Literal["passed", "advisory", "denied", "failed"]
TITLES: dict[Verdict, str] = {"passed": "passed", "advisory": "passed with advisories", "denied": "denied by policy",
                              "failed": "preview failed"}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Violation(_Model):
    policy: str
    level: str = Field(description="mandatory, advisory or remediate, as the team file set it")
    resource: str = Field(description="the resource's name (the stack's, for stack policies)")
    urn: str
    description: str = Field(description="what the policy checks (its description)")
    message: str = Field(description="what is wrong here and what to change")


class Estimate(_Model):
    """Money as exact decimals; None = unknown (an instance whose price is not known), never 0."""

    hourly: Decimal | None
    daily: Decimal | None
    monthly: Decimal | None
    instances: int
    unknown_instances: tuple[str, ...] = ()
    basis: dict[str, int] = Field(default_factory=dict, description="instances by estimate basis")

    @classmethod
    def of(cls, fleet: FleetEstimate) -> Estimate:
        basis: dict[str, int] = {}
        for inst in fleet.instances:
            basis[inst.basis] = basis.get(inst.basis, 0) + 1
        return cls(hourly=fleet.hourly, daily=fleet.daily, monthly=fleet.monthly, instances=len(fleet.instances),
                   unknown_instances=fleet.unknown, basis=dict(sorted(basis.items())))


class CostChange(_Model):
    before: Estimate
    after: Estimate
    hourly_delta: Decimal | None

    @classmethod
    def of(cls, diff: CostDiff) -> CostChange:
        return cls(before=Estimate.of(diff.before), after=Estimate.of(diff.after), hourly_delta=diff.hourly_delta)


class _Judged(_Model):
    schema_version: int = SCHEMA_VERSION
    team: str
    stack: str
    verdict: Verdict
    violations: tuple[Violation, ...]
    errors: tuple[str, ...] = ()


KeyUsed = Literal["preview", "deploy", "own", "none"]


class Rules(_Model):
    """Which rules judged: `base` = the trusted tree (the base commit) judged a pull request's stack file;
    `checkout` = the checkout judged itself (local runs, deploys of main)."""

    source: Literal["base", "checkout"]
    commit: str | None = Field(description="the commit of the tree whose pack and team files judged; None outside git")


class PreviewReport(_Judged):
    report: Literal["preview"] = "preview"
    changes: dict[str, int] = Field(description="instance steps by operation")
    cost: CostChange
    rules: Rules | None = None
    key: KeyUsed | None = Field(default=None, description="the kind of Vast key the preview ran with: the team's "
                                "preview or deploy key from the platform, its own (vastai:apiKey), or none")

    @property
    def title(self) -> str:
        return TITLES[self.verdict]


class PolicyAuditReport(_Judged):
    """The pack run against a stack's current state (`pulumi policy analyze`): what no longer complies."""

    report: Literal["policy-audit"] = "policy-audit"

    @property
    def title(self) -> str:
        return {"passed": "complies", "advisory": "complies, with advisories", "denied": "no longer complies",
                "failed": "audit failed"}[self.verdict]


def violations(events: Iterable[EngineEvent]) -> tuple[Violation, ...]:
    out = []
    for p in policy_events(events):
        description, _, message = p.message.strip().partition("\n")
        out.append(Violation(policy=p.policy_name, level=p.enforcement_level, urn=p.resource_urn,
                             resource=p.resource_urn.rsplit("::", 1)[-1] if p.resource_urn else "",
                             description=description.strip(), message=(message or description).strip()))
    return tuple(out)


def decide(found: Sequence[Violation], *, ok: bool) -> Verdict:
    if any(v.level == "mandatory" for v in found):
        return "denied"
    if not ok:
        return "failed"
    return "advisory" if found else "passed"


def _ok(events: Sequence[EngineEvent], exit_code: int) -> bool:
    end = summary(events)
    return exit_code == 0 and end is not None and end.result != "failed"


def preview_report(team: str, stack: str, events: Sequence[EngineEvent], *, exit_code: int,
                   stderr_tail: str = "") -> PreviewReport:
    found = violations(events)
    ok = _ok(events, exit_code)
    problems = errors(events)
    if not ok and not found and not problems and stderr_tail:
        problems = [stderr_tail]  # the engine stopped before it could report (e.g. a bad flag, no stack)
    diff = cost_diff(team, steps(events))
    return PreviewReport(team=team, stack=stack, verdict=decide(found, ok=ok), violations=found,
                         changes=diff.changes, cost=CostChange.of(diff), errors=tuple(problems))


def policy_audit_report(team: str, stack: str, events: Sequence[EngineEvent], *, exit_code: int,
                        stderr_tail: str = "") -> PolicyAuditReport:
    found = violations(events)
    problems = errors(events)
    ok = exit_code == 0 or (bool(found) and summary(events) is not None)
    if not ok and not problems and stderr_tail:
        problems = [stderr_tail]
    return PolicyAuditReport(team=team, stack=stack, verdict=decide(found, ok=ok), violations=found,
                             errors=tuple(problems))
