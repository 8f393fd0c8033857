"""`vastai:TeamSpend`: what a team has actually spent in its budget windows, as a Pulumi resource the policy pack
reads at preview (a Python dynamic provider; the contract is `fleet.spend`).

It rents nothing and bills nothing. Its provider's `check` reads the team's spend with the stack's own key, once
per preview: one listing of the team's instances (shared with the instance provider's adoption checks in the
same process, so an `up` costs no extra listing) and one charges query, and adds the reading to the inputs, as
the instance provider adds a price quote. Then:

- `diff` reports a change when the reading moved (`fleet.spend.moved`): the engine hands the pack's stack rules
  an unchanged resource's outputs, the last deploy's reading, so a new reading must show as an update to be
  judged. It moved when the last one is older than 15 minutes, its windows, instances, pauses or burn changed,
  or the spend did not grow as its burn said; otherwise the last reading still projects the same total, and a
  stack nobody changed previews (`--expect-no-changes`) without changes.
- A reading that cannot be taken (the key lacks `billing_read`, Vast errs past the client's retries) never
  fails the preview as an error: it becomes an unknown reading whose `reason` says what to fix, and the pack's
  `vast-actual-spend` rule denies on it (or warns, as the team file says). Unknown is never $0.
- The program declares it after the instances, depending on them all: its `create`/`update` run once the
  deploy's instance creates and updates are done and record the spend as it then is (its input `fleet`, a digest
  of the declaration, changes with every fleet change), so the next preview of an unchanged stack finds the same.
- `read` (refresh) takes a fresh reading; `delete` has nothing to release.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)
from pydantic import ValidationError

from fleet.budget import UnknownTimezoneError, zone
from fleet.spend import SpendReading, TeamSpendInputs, TeamSpendOutputs, moved
from providers import market
from providers.configured import ConfiguredProvider
from providers.explain import explain
from vastclient import MissingApiKeyError, VastClient, VastError
from vastclient.spend import team_spend

DECLARED = ("team", "stack", "timezone", "windows", "fleet")


class TeamSpendProvider(ConfiguredProvider):
    @staticmethod
    def _inputs(props: dict[str, Any]) -> TeamSpendInputs:
        return TeamSpendInputs.model_validate({k: v for k, v in props.items() if k in TeamSpendInputs.model_fields})

    def _reading(self, inputs: TeamSpendInputs, *, fresh: bool = False) -> SpendReading:
        """The team's spend now: from this process's account listing (the adoption checks'), or, `fresh`, from a
        listing of its own (after a deploy's changes)."""
        settings = self._current_settings()
        try:
            key = settings.require_key()
            session = market.session_for(
                settings.base_url, key, make_client=lambda: VastClient(api_key=key, base_url=settings.base_url,
                                                                       pace=True))
            if fresh:
                reading, _, _ = team_spend(session.client, timezone=inputs.timezone, kinds=inputs.windows)
            else:
                listing = session.board.account_listing()
                reading, _, _ = team_spend(session.client, timezone=inputs.timezone, kinds=inputs.windows,
                                           instances=listing, listed_at=session.board.account_listed_at)
        except MissingApiKeyError as err:
            return SpendReading.unknown(str(err), timezone=inputs.timezone)
        except VastError as err:
            problem = explain(err, base_url=settings.base_url, stack=inputs.stack, doing="read the team's charges")
            return SpendReading.unknown(f"{problem}; a key that previews a team stack needs instance_read and "
                                        "billing_read", timezone=inputs.timezone)
        return reading

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        try:
            inputs = self._inputs({**news, "reading": None})
        except ValidationError as err:
            failures = [CheckFailure(".".join(str(p) for p in e["loc"]) or "inputs",
                                     f"{e['msg']} (got {e.get('input')!r})") for e in err.errors()]
            return CheckResult(news, failures)
        try:
            zone(inputs.timezone)
        except UnknownTimezoneError as err:
            return CheckResult(news, [CheckFailure("timezone", f"{err}; fix vast-actual-spend.timezone in "
                                                               f"policies/teams/{inputs.team}.json")])
        reading = self._reading(inputs)
        return CheckResult({**news, "reading": reading.model_dump(mode="json")}, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        declared = [k for k in DECLARED if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(declared) or moved(_reading(olds), _reading(news)), replaces=[], stables=[],
                          delete_before_replace=False)

    @staticmethod
    def _outputs(inputs: TeamSpendInputs) -> dict[str, Any]:
        return TeamSpendOutputs.model_validate(inputs.model_dump()).model_dump(mode="json")

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._after_deploy(self._inputs(props))
        return CreateResult(id_=f"{inputs.stack}/{inputs.team}", outs=self._outputs(inputs))

    def _after_deploy(self, inputs: TeamSpendInputs) -> TeamSpendInputs:
        """The resource depends on every instance, so this runs once the deploy's creates and updates are done:
        the state records the spend as it is now, which the next preview compares its reading with. The check's
        reading (what the deploy was judged on) is kept when this one cannot be taken."""
        after = self._reading(inputs, fresh=True)
        return inputs.model_copy(update={"reading": after}) if after.status == "known" else inputs

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            inputs = self._inputs(props)
        except ValidationError:
            return ReadResult(id_=id_, outs=props)  # state written by another version: leave it as it is
        fresh = inputs.model_copy(update={"reading": self._reading(inputs)})
        return ReadResult(id_=id_, outs=self._outputs(fresh))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._outputs(self._after_deploy(self._inputs(news))))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # a reading: nothing on Vast to release


def _reading(props: dict[str, Any]) -> SpendReading | None:
    raw = props.get("reading")
    try:
        return SpendReading.model_validate(raw) if isinstance(raw, dict) else None
    except ValidationError:
        return None


_PROVIDER = TeamSpendProvider()


class TeamSpend(Resource, module="vastai", name="TeamSpend"):
    """The team's actual spend in its budget windows, read at every preview (one per team stack)."""

    def __init__(self, name: str, inputs: TeamSpendInputs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(_PROVIDER, name, inputs.model_dump(mode="json"), opts)
