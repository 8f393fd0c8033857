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
import sys
import threading
import time
from typing import Any

import pulumi
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

from fleet import gpus
from fleet.instance import InstanceInputs, InstanceSpec, Quote
from providers import market, provisioning
from providers.explain import explain, stack_of
from providers.host import engine_address, exit_with_engine, widen_worker_pool
from providers.settings import ProviderSettings, settings_from
from vastclient import Instance as VastInstance
from vastclient import NotFoundError, VastClient, VastError

log = logging.getLogger("vastguard.provider")

# Changing these rents a different machine or container: replace. `state` and `label` change in place.
REPLACE_FIELDS = ("team", "gpu_name", "num_gpus", "image", "disk_gb", "min_reliability", "verified_only",
                  "geolocation", "onstart", "env", "ownership_tag")
IN_PLACE_FIELDS = ("state", "label", "max_dph")
CLOCK_OUTPUTS = ("vast_created_at", "vast_state_since", "vast_seen_at", "local_seen_at")


class VastInstanceProvider(ResourceProvider):
    _settings: ProviderSettings | None

    def __init__(self) -> None:
        super().__init__()
        self._settings = None

    # Keep only plain state when pickled into `__provider`: never a key, a client or a lock.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, _state: dict[str, Any]) -> None:
        self._settings = None

    def configure(self, req: ConfigureRequest) -> None:
        widen_worker_pool()
        exit_with_engine(engine_address(sys.argv))
        self._settings = settings_from(req.config.get)

    # --- helpers -----------------------------------------------------------------------------------------

    def _current_settings(self) -> ProviderSettings:
        # Without `configure` (e.g. an engine that skips it), fall back to the environment alone.
        return self._settings or settings_from(lambda _k: None)

    def _market(self) -> market.Session:
        """The process's shared client, offer book and instance board for this stack's account."""
        settings = self._current_settings()
        key = settings.require_key()
        return market.session_for(settings.base_url, key,
                                  make_client=lambda: VastClient(api_key=key, base_url=settings.base_url, pace=True))

    @staticmethod
    def _spec(props: dict[str, Any]) -> InstanceSpec:
        fields = {k: v for k, v in props.items() if k in InstanceSpec.model_fields}
        return InstanceSpec.model_validate(fields)

    def _outputs(self, props: dict[str, Any], inst: VastInstance, quote: Quote | None) -> dict[str, Any]:
        inputs = {k: v for k, v in props.items() if not k.startswith("__")}
        return {
            **inputs,
            "quote": quote.model_dump() if quote else props.get("quote"),
            "instance_id": inst.id,
            "offer_id": quote.offer_id if quote else props.get("offer_id"),
            "machine_id": inst.machine_id,
            "dph_total": inst.dph_total if inst.dph_total is not None else props.get("dph_total"),
            "storage_cost": inst.storage_cost if inst.storage_cost is not None else props.get("storage_cost"),
            "status": inst.actual_status or "provisioning",
            "state": props.get("state", "running"),
            "vast_label": inst.label,
            "ssh_host": inst.ssh_host,
            "ssh_port": inst.ssh_port,
            "public_ip": inst.public_ipaddr,
            "start_date": inst.start_date,
            "vast_created_at": props.get("vast_created_at"),
            "vast_state_since": props.get("vast_state_since"),
        }

    @staticmethod
    def _seen(outs: dict[str, Any], seen: float | None) -> dict[str, Any]:
        """The clock sample of the provider's last call: Vast's clock and ours, taken together."""
        if seen is not None:
            outs["vast_seen_at"], outs["local_seen_at"] = seen, time.time()
        return outs

    # --- CRUD --------------------------------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        try:
            spec = self._spec(news)
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
                gpus.resolve(spec.gpu_name, known)
            except gpus.UnknownGpuError as err:
                return CheckResult(news, [CheckFailure(
                    "gpu_name", f"{err}; fix the group's `gpu` in stacks/Pulumi.{stack_of(news)}.yaml")])
            try:
                quote = provisioning.quote(session, spec, known)
            except provisioning.NoOfferError as err:
                return CheckResult(news, [CheckFailure("max_dph", str(err))])
        except VastError as err:
            base_url = self._settings.base_url if self._settings else None
            return CheckResult(news, [CheckFailure("quote", explain(err, base_url=base_url, stack=stack_of(news)))])
        return CheckResult({**news, "quote": quote.model_dump()}, [])

    def _spec_unchanged(self, olds: dict[str, Any], news: dict[str, Any]) -> bool:
        keys = set(InstanceSpec.model_fields) | {"ownership_tag"}
        return all(olds.get(k) == news.get(k) for k in keys)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_FIELDS if olds.get(k) != news.get(k)]
        in_place = [k for k in IN_PLACE_FIELDS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces or in_place), replaces=replaces,
                          stables=["ownership_tag"], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = self._spec(props)
        settings = self._current_settings()
        # A replacement is created before its predecessor is deleted and must not adopt it: the tag names the
        # incarnation (what is rented), so only a retry of this very create finds and adopts its instance.
        tag = provisioning.incarnation_tag(props["ownership_tag"], {k: props.get(k) for k in REPLACE_FIELDS})
        times = provisioning.VastTimes()
        widen_worker_pool()
        session = self._market()
        quoted = props.get("quote")
        inst, quote = provisioning.rent(
            session, spec, session.gpu_names(), tag=tag,
            waiter=provisioning.Waiter(timeout=settings.provision_timeout), log=log.info, times=times,
            prefer=quoted.get("offer_id") if isinstance(quoted, dict) else None,
        )
        outs = self._seen(self._outputs(props, inst, quote), session.board.last_server_time)
        outs["vast_created_at"] = times.created_at if times.created_at is not None else inst.start_date
        outs["vast_state_since"] = times.state_since
        return CreateResult(id_=str(inst.id), outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        board = self._market().board
        inst = board.get_instance(int(id_))
        if inst is None:
            return ReadResult(id_="", outs={})
        outs = self._seen(self._outputs(props, inst, None), board.last_server_time)
        if outs["vast_created_at"] is None:  # state written before the clock outputs, or an import
            outs["vast_created_at"] = inst.start_date
        # Reflect Vast's truth: a stopped-behind-our-back instance shows as stopped, so `up` restarts it. So does
        # one that died after it ran (`exited`, `offline`, `unknown` never recover by themselves): otherwise the
        # stack would keep saying `running` and no `up` would ever start it again.
        if inst.actual_status == "stopped" or inst.intended_status == "stopped" or inst.phase == "failed":
            outs["state"] = "stopped"
        elif inst.actual_status == "running":
            outs["state"] = "running"
        return ReadResult(id_=id_, outs=outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = self._spec(news)
        settings = self._current_settings()
        instance_id = int(id_)
        state_since = olds.get("vast_state_since")
        client = self._market().client
        if olds.get("label") != news.get("label"):
            tag = provisioning.tag_of(olds.get("vast_label")) or news["ownership_tag"]
            client.set_label(instance_id, provisioning.compose_label(tag, spec.label))
        if olds.get("state") != spec.state:
            if spec.state == "stopped":
                client.stop(instance_id)
            else:
                client.start(instance_id)
                provisioning.Waiter(timeout=settings.provision_timeout).until_running(client, instance_id)
            state_since = client.last_server_time  # the stop response, or the poll that saw it running
        inst = client.get_instance(instance_id)
        if inst is None:
            raise provisioning.ProvisioningError(
                f"instance {instance_id} vanished during the update; run refresh")
        quote = Quote.model_validate(olds["quote"]) if isinstance(olds.get("quote"), dict) else None
        outs = self._seen(self._outputs(news, inst, quote), client.last_server_time)
        outs["offer_id"] = olds.get("offer_id")
        outs["vast_created_at"] = olds.get("vast_created_at") if olds.get("vast_created_at") is not None \
            else inst.start_date
        outs["vast_state_since"] = state_since
        return UpdateResult(outs=outs)

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        # Already gone is the desired end state.
        with contextlib.suppress(NotFoundError):
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
        props: dict[str, Any] = {
            **InstanceInputs.model_validate(spec.model_dump()).model_dump(exclude={"quote"}),
            "ownership_tag": provisioning.ownership_tag(pulumi.get_stack(), name),
            "quote": None,
            "instance_id": None, "offer_id": None, "machine_id": None, "dph_total": None, "storage_cost": None,
            "status": None, "vast_label": None, "ssh_host": None, "ssh_port": None, "public_ip": None,
            "start_date": None, **dict.fromkeys(CLOCK_OUTPUTS),
        }
        super().__init__(_provider(), name, props, opts)
