"""`vastai:Instance`: a Vast.ai GPU instance as a Pulumi resource (a Python dynamic provider).

Pulumi quirks handled here:
- The provider object is pickled into state (the `__provider` input), so it holds no client and no key: the
  key arrives at run time through `configure` (stack config `vastai:apiKey`, a secret) or VAST_API_KEY.
- `check` runs at preview and adds a live price `quote`, which is what lets the policy pack judge budgets before
  anything is rented; an unchanged instance keeps its previous quote so previews stay quiet and cheap.
- `diff` is explicit and ignores `__provider` and `quote`, otherwise every code change or price move would
  show as an update.
- Inside the provider process `pulumi.get_stack()` is a placeholder, so the program passes the ownership tag
  (`vg:<stack>/<name>`) as an input.

Inputs and outputs are `fleet.instance.InstanceInputs` / `InstanceOutputs`, the one contract shared with the pack
and the reports: every result below is built through it.

Clock outputs (the reports' contract, reports/README.md): Vast bills by its own clock, which against the
emulator is virtual, while Pulumi's history is stamped with wall-clock times. So each resource records, on
Vast's clock (epoch seconds from the confirming response, `VastClient.last_server_time`): `vast_created_at`
(the rent response; an adopted instance's `start_date`; kept afterwards), `vast_state_since` (when the current
`state` took effect: the poll that first saw it running, or the stop response; rewritten by an update that
changes the state, kept otherwise), and the clock sample `vast_seen_at` with the provider's own `time.time()`
at the same moment, `local_seen_at` (every create, update and read), which lets the reports map Pulumi's
wall-clock times (deletes) onto Vast's clock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
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

from fleet import gpus
from fleet.instance import OUTPUT_FIELDS, InstanceInputs, InstanceOutputs, InstanceRecord, InstanceSpec, Quote
from providers import market, provisioning
from providers.configured import ConfiguredProvider
from providers.explain import explain, stack_of
from providers.host import fail, widen_worker_pool
from vastclient import Instance as VastInstance
from vastclient import VastClient, VastError

log = logging.getLogger("vastguard.provider")

# Changing these rents a different machine or container: replace (Vast cannot turn an on-demand rental into an
# interruptible one or back: "Once the instance is rented, there is no way to change the bidding method").
# `state`, `label` and the caps change in place; a new `max_bid` is a bid change (`PUT /instances/bid_price/`).
REPLACE_FIELDS = ("team", "gpu_name", "num_gpus", "image", "disk_gb", "min_reliability", "verified_only",
                  "geolocation", "onstart", "env", "ownership_tag", "interruptible")
IN_PLACE_FIELDS = ("state", "label", "max_dph", "max_bid")
_DEFAULTS: dict[str, Any] = {name: info.get_default(call_default_factory=True)
                             for name, info in InstanceInputs.model_fields.items() if not info.is_required()}


def _input(props: dict[str, Any], field: str) -> Any:
    """An input as the contract reads it: state written before a field existed means its default (a stack
    rented before `interruptible` existed is on demand, not a replacement)."""
    return props.get(field, _DEFAULTS.get(field))


class VastInstanceProvider(ConfiguredProvider):
    # --- helpers -----------------------------------------------------------------------------------------

    def _market(self) -> market.Session:
        """The process's shared client, offer book and instance board for this stack's account."""
        settings = self._current_settings()
        key = settings.require_key()
        return market.session_for(settings.base_url, key,
                                  make_client=lambda: VastClient(api_key=key, base_url=settings.base_url, pace=True))

    @staticmethod
    def _inputs(props: dict[str, Any]) -> InstanceInputs:
        """The contract's inputs out of Pulumi's properties (which also carry `__provider` and, from the
        program, the outputs' names with no value yet)."""
        return InstanceInputs.model_validate({k: v for k, v in props.items() if k in InstanceInputs.model_fields})

    @staticmethod
    def _outputs(inputs: InstanceInputs, inst: VastInstance, *, before: InstanceRecord, offer_id: int | None,
                 seen: float | None, state: str | None = None, created_at: float | None = None,
                 state_since: float | None = None) -> dict[str, Any]:
        """The resource's outputs, built through the contract. `before` is what the previous outputs recorded: a
        price Vast leaves out of this answer keeps its last known value (unknown stays None, never 0); `seen` is
        Vast's clock at the call that produced `inst`, recorded with our own clock at the same moment."""
        outputs = InstanceOutputs.model_validate({
            **inputs.model_dump(),
            "state": state or inputs.state,
            "instance_id": inst.id,
            "offer_id": offer_id,
            "machine_id": inst.machine_id,
            "dph_total": inst.dph_total if inst.dph_total is not None else before.dph_total,
            "storage_cost": inst.storage_cost if inst.storage_cost is not None else before.storage_cost,
            "status": inst.actual_status or "provisioning",
            "bid": inst.dph_base if inst.is_bid else None,
            "outbid": inputs.interruptible and provisioning.is_outbid(inst, inputs.state),
            "vast_label": inst.label,
            "ssh_host": inst.ssh_host,
            "ssh_port": inst.ssh_port,
            "public_ip": inst.public_ipaddr,
            "start_date": inst.start_date,
            "vast_created_at": created_at if created_at is not None else before.vast_created_at,
            "vast_state_since": state_since,
            "vast_seen_at": seen if seen is not None else before.vast_seen_at,
            "local_seen_at": time.time() if seen is not None else before.local_seen_at,
        })
        return outputs.model_dump(mode="json")

    @contextlib.contextmanager
    def _reported(self, props: dict[str, Any], doing: str, then: str) -> Iterator[None]:
        """A failure of an engine call as one line for the user: what failed (for a Vast error, `explain`'s
        problem and fix) and what to run once it is fixed, not gRPC's `Exception calling application: ...`."""
        tag = str(props.get("ownership_tag") or "")
        name = tag.split("/", 1)[1] if "/" in tag else "instance"
        try:
            yield
        except VastError as err:
            base_url = self._settings.base_url if self._settings else None
            fail(f"{name}: {explain(err, base_url=base_url, stack=stack_of(props), doing=doing)}; {then}")
        except provisioning.ProvisioningError as err:
            fail(f"{name}: {err}; {then}")

    # --- CRUD --------------------------------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        try:
            inputs = self._inputs({**news, "quote": None})
        except ValidationError as err:
            for e in err.errors():
                field = ".".join(str(p) for p in e["loc"]) or "inputs"
                failures.append(CheckFailure(field, f"{e['msg']} (got {e.get('input')!r})"))
            return CheckResult(news, failures)
        if olds and olds.get("quote") and self._spec_unchanged(olds, news):
            return CheckResult({**news, "quote": olds["quote"]}, [])
        try:
            session = self._market()
            known = session.gpu_names()
            try:
                gpus.resolve(inputs.gpu_name, known)
            except gpus.UnknownGpuError as err:
                return CheckResult(news, [CheckFailure(
                    "gpu_name", f"{err}; fix the group's `gpu` in stacks/Pulumi.{stack_of(news)}.yaml")])
            try:
                quote = provisioning.quote(session, inputs, known)
            except provisioning.NoOfferError as err:
                return CheckResult(news, [CheckFailure("max_bid" if inputs.interruptible else "max_dph", str(err))])
        except VastError as err:
            base_url = self._settings.base_url if self._settings else None
            return CheckResult(news, [CheckFailure("quote", explain(err, base_url=base_url, stack=stack_of(news)))])
        return CheckResult({**news, "quote": quote.model_dump(mode="json")}, [])

    @staticmethod
    def _spec_unchanged(olds: dict[str, Any], news: dict[str, Any]) -> bool:
        keys = set(InstanceInputs.model_fields) - {"quote"}
        return all(_input(olds, k) == _input(news, k) for k in keys)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_FIELDS if _input(olds, k) != _input(news, k)]
        in_place = [k for k in IN_PLACE_FIELDS if _input(olds, k) != _input(news, k)]
        return DiffResult(changes=bool(replaces or in_place), replaces=replaces,
                          stables=["ownership_tag"], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        with self._reported(props, "rent an instance", "once that is fixed, run `pulumi up` again: it adopts "
                            "anything this create rented, by its ownership tag"):
            return self._create(props)

    def _create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._inputs(props)
        settings = self._current_settings()
        # A replacement is created before its predecessor is deleted and must not adopt it: the tag names the
        # incarnation (what is rented), so only a retry of this very create finds and adopts its instance.
        tag = provisioning.incarnation_tag(inputs.ownership_tag, {k: props.get(k) for k in REPLACE_FIELDS})
        times = provisioning.VastTimes()
        widen_worker_pool()
        session = self._market()
        inst, rented = provisioning.rent(
            session, inputs, session.gpu_names(), tag=tag,
            waiter=provisioning.Waiter(timeout=settings.provision_timeout), log=log.info, times=times,
            prefer=inputs.quote.offer_id if inputs.quote else None,
        )
        if rented is not None:
            inputs = inputs.model_copy(update={"quote": rented})
        outs = self._outputs(inputs, inst, before=InstanceRecord(), offer_id=rented.offer_id if rented else None,
                             seen=session.board.last_server_time,
                             created_at=times.created_at if times.created_at is not None else inst.start_date,
                             state_since=times.state_since)
        return CreateResult(id_=str(inst.id), outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        with self._reported(props, f"read instance {id_}", "the state is unchanged; run the refresh again once "
                            "that is fixed"):
            return self._read(id_, props)

    def _read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            inputs = self._inputs(props)
        except ValidationError as err:
            raise provisioning.ProvisioningError(
                f"instance {id_}: its state does not hold the inputs vastai:Instance needs ({err.error_count()} "
                "problems, e.g. an import): declare it in the team's fleet instead; `pulumi up` adopts an "
                "instance by its ownership tag") from None
        session = self._market()
        inst = session.board.get_instance(int(id_))
        seen = session.board.last_server_time
        if inst is None:
            # Not in the account's listing. Only Vast's own answer that the instance does not exist means it is
            # gone: a listing that lags or a gateway's 404 must not drop a paid instance from the state.
            inst = session.client.get_instance(int(id_))
            seen = session.client.last_server_time
            if inst is None:
                return ReadResult(id_="", outs={})
        before = InstanceRecord.model_validate(props)
        # Reflect Vast's truth: a stopped-behind-our-back instance shows as stopped, so `up` restarts it. So does
        # one that died after it ran (`exited`, `offline`, `unknown` never recover by themselves): otherwise the
        # stack would keep saying `running` and no `up` would ever start it again.
        # An outbid interruptible instance is the exception: paused by the market, not failed and not stopped by
        # anyone, it stays `running` in the state (`outbid` says why it is not), so no `up` restarts or replaces
        # it; it resumes by itself when its bid wins again.
        state = inputs.state
        if inputs.interruptible and provisioning.is_outbid(inst, inputs.state):
            state = "running"
        elif inst.actual_status == "stopped" or inst.intended_status == "stopped" or inst.phase == "failed":
            state = "stopped"
        elif inst.actual_status == "running":
            state = "running"
        # `vast_created_at`: kept; state written before the clock outputs (or without them) falls back to Vast's
        # start_date. `vast_state_since`: a change found by a refresh has no known moment, so it is kept.
        outs = self._outputs(inputs, inst, before=before, offer_id=before.offer_id, seen=seen, state=state,
                             created_at=before.vast_created_at if before.vast_created_at is not None
                             else inst.start_date, state_since=before.vast_state_since)
        return ReadResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with self._reported(olds, f"change instance {id_}", "once that is fixed, run `pulumi up` again"):
            return self._update(id_, olds, news)

    def _update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = self._inputs(news)
        before = InstanceRecord.model_validate(olds)
        settings = self._current_settings()
        instance_id = int(id_)
        state_since = before.vast_state_since
        client = self._market().client
        if olds.get("label") != inputs.label:
            tag = provisioning.tag_of(before.vast_label) or inputs.ownership_tag
            client.set_label(instance_id, provisioning.compose_label(tag, inputs.label))
        if inputs.interruptible and inputs.max_bid is not None and _input(olds, "max_bid") != inputs.max_bid:
            client.change_bid(instance_id, inputs.max_bid)
        if olds.get("state") != inputs.state:
            if inputs.state == "stopped":
                client.stop(instance_id)
            else:
                client.start(instance_id)
                provisioning.Waiter(timeout=settings.provision_timeout).until_running(
                    client, instance_id, outbid_ok=inputs.interruptible)
            state_since = client.last_server_time  # the stop response, or the poll that saw it running
        inst = client.get_instance(instance_id)
        if inst is None:
            raise provisioning.ProvisioningError(
                f"instance {instance_id} vanished during the update; run refresh")
        quote = Quote.model_validate(olds["quote"]) if isinstance(olds.get("quote"), dict) else None
        if quote is not None and quote.bid is not None and inputs.max_bid is not None and inst.dph_total is not None:
            quote = quote.model_copy(update={"bid": inputs.max_bid, "dph_total": inst.dph_total})  # the new bid
        outs = self._outputs(inputs.model_copy(update={"quote": quote}), inst, before=before,
                             offer_id=before.offer_id, seen=client.last_server_time,
                             created_at=before.vast_created_at if before.vast_created_at is not None
                             else inst.start_date, state_since=state_since)
        return UpdateResult(outs=outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        # Already gone is the desired end state, and `destroy` says so only on Vast's own `no_such_instance`:
        # a 404 from anything in front of Vast fails the delete, and the instance stays in the state.
        with self._reported(props, f"destroy instance {id_}", "it is still in the state (and may still bill); "
                            "run the same command again once that is fixed"):
            self._market().client.destroy(int(id_))


_PROVIDER_LOCK = threading.Lock()
_PROVIDER: VastInstanceProvider | None = None


def _provider() -> VastInstanceProvider:
    global _PROVIDER
    with _PROVIDER_LOCK:
        if _PROVIDER is None:
            _PROVIDER = VastInstanceProvider()
        return _PROVIDER


class Instance(Resource, module="vastai", name="Instance"):
    """One rented Vast.ai instance, declared by a team's fleet."""

    instance_id: pulumi.Output[int]
    dph_total: pulumi.Output[float]
    status: pulumi.Output[str]
    quote: pulumi.Output[dict[str, Any]]
    vast_created_at: pulumi.Output[float]
    vast_state_since: pulumi.Output[float]
    vast_seen_at: pulumi.Output[float]
    local_seen_at: pulumi.Output[float]

    def __init__(self, name: str, spec: InstanceSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        inputs = InstanceInputs(**spec.model_dump(), ownership_tag=provisioning.ownership_tag(pulumi.get_stack(), name))
        # Every output is named here (unknown until Vast reports it), so the program can read them.
        props: dict[str, Any] = {**inputs.model_dump(mode="json"), **dict.fromkeys(OUTPUT_FIELDS)}
        super().__init__(_provider(), name, props, opts)
