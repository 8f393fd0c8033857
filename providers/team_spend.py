"""`vastai:TeamSpend`: what a team has actually spent in its budget windows, as a Pulumi resource the policy pack
reads at preview (a Python dynamic provider; the contract is `fleet.spend`).

It rents nothing and bills nothing. Its provider's `check` reads the team's spend with the stack's own key, once
per preview: one listing of the team's instances (shared with the instance provider's adoption checks in the
same process, so an `up` costs no extra listing) and one charges query, and adds the reading to the inputs, as
the instance provider adds a price quote. Then:

- `diff` reports a change whenever the reading moved. An unchanged resource would hand the pack's stack rules
  the outputs of the last deploy, not this preview's reading; so every preview shows it as an update, and every
  deploy records in the stack's history the spend it was judged on.
- A reading that cannot be taken (the key lacks `billing_read`, Vast errs past the client's retries) never
  fails the preview as an error: it becomes an unknown reading whose `reason` says what to fix, and the pack's
  `vast-actual-spend` rule denies on it (or warns, as the team file says). Unknown is never $0.
- `read` (refresh) takes a fresh reading; `create`/`update` record the inputs; `delete` has nothing to release.
"""

from __future__ import annotations

import sys
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pydantic import ValidationError

from fleet.budget import UnknownTimezoneError, zone
from fleet.spend import SpendReading, TeamSpendInputs, TeamSpendOutputs
from providers import market
from providers.explain import explain
from providers.host import engine_address, exit_with_engine, widen_worker_pool
from providers.settings import ProviderSettings, settings_from
from vastclient import MissingApiKeyError, VastClient, VastError
from vastclient.spend import team_spend

DECLARED = ("team", "stack", "timezone", "windows")


class TeamSpendProvider(ResourceProvider):
    _settings: ProviderSettings | None

    def __init__(self) -> None:
        super().__init__()
        self._settings = None

    # Nothing of the provider is pickled into `__provider` but its class: never a key or a client.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, _state: dict[str, Any]) -> None:
        self._settings = None

    def configure(self, req: ConfigureRequest) -> None:
        widen_worker_pool()
        exit_with_engine(engine_address(sys.argv))
        self._settings = settings_from(req.config.get)

    @staticmethod
    def _inputs(props: dict[str, Any]) -> TeamSpendInputs:
        return TeamSpendInputs.model_validate({k: v for k, v in props.items() if k in TeamSpendInputs.model_fields})

    def _reading(self, inputs: TeamSpendInputs) -> SpendReading:
        settings = self._settings or settings_from(lambda _k: None)
        try:
            key = settings.require_key()
            session = market.session_for(
                settings.base_url, key, make_client=lambda: VastClient(api_key=key, base_url=settings.base_url,
                                                                       pace=True))
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
        changed = [k for k in (*DECLARED, "reading") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    @staticmethod
    def _outputs(inputs: TeamSpendInputs) -> dict[str, Any]:
        return TeamSpendOutputs.model_validate(inputs.model_dump()).model_dump(mode="json")

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._inputs(props)
        return CreateResult(id_=f"{inputs.stack}/{inputs.team}", outs=self._outputs(inputs))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            inputs = self._inputs(props)
        except ValidationError:
            return ReadResult(id_=id_, outs=props)  # state written by another version: leave it as it is
        fresh = inputs.model_copy(update={"reading": self._reading(inputs)})
        return ReadResult(id_=id_, outs=self._outputs(fresh))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._outputs(self._inputs(news)))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None  # a reading: nothing on Vast to release


_PROVIDER = TeamSpendProvider()


class TeamSpend(Resource, module="vastai", name="TeamSpend"):
    """The team's actual spend in its budget windows, read at every preview (one per team stack)."""

    def __init__(self, name: str, inputs: TeamSpendInputs) -> None:
        super().__init__(_PROVIDER, name, inputs.model_dump(mode="json"), None)
