"""Generated invalid fleets: every one is refused on the path `pulumi preview` runs, by a message naming the
group and the field, and nothing that rents, changes or releases an instance reaches Vast.ai.

A preview runs two validations, and these tests run both, for real:
- the program (program.fleet_program.run) validates `vastguard:fleet` and `vastguard:team` before declaring
  anything (fleet.declaration);
- for every instance it declares, the engine calls the provider's `check` (providers.vast_instance), which
  validates the inputs again and asks Vast.ai for a quote: only there is an unknown GPU name found out.
The engine is replaced by Pulumi's mocks, whose `new_resource` calls the real provider `check` on the inputs the
program registered, against a live emulator; the emulator's request log then shows every call that was made.
The real engine runs a handful of the same cases in tests/e2e/test_bad_input_engine.py.

What counts as invalid is written here from the field's meaning (a count of -1, a price of NaN, `true` as a
disk size, an image reference with a space or upper case, a country that is not a two-letter code), not
derived from the validators, so a validator that lets one through fails the test.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

from emulator import EmulatorServer
from fleet import gpus
from fleet.declaration import MAX_COUNT, Group
from fleet.instance import INSTANCE_TYPE, InstanceSpec
from providers.settings import ProviderSettings
from providers.vast_instance import VastInstanceProvider
from vastclient import VastClient

STACK = TEAM = "data-science"
VALID: dict[str, Any] = {"gpu": "RTX_3090", "count": 1, "image": "jupyter/pytorch-notebook:latest",
                         "disk_gb": 32, "max_dph": 0.30}
MUTATING = ("create", "manage", "destroy")
# Deterministic (derandomize: the same examples on every run and machine), bounded, no per-example deadline
# (the emulator answers over real HTTP on a shared 2-core machine).
CI = settings(derandomize=True, max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- invalid values, by what they are --------------------------------------------------------------------

LETTERS = string.ascii_letters
# Letters only: never a number (pydantic reads "nan"/"inf" as numbers, which the validators refuse as such).
words = st.text(LETTERS, min_size=1, max_size=12)
containers = st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(LETTERS, max_size=3), st.integers(),
                                                                    max_size=2)
not_a_number = st.none() | st.booleans() | words | containers
not_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
not_a_string = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | containers
fractions = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())


def outside(low: float | None, high: float | None, *, integer: bool = False) -> st.SearchStrategy[Any]:
    """Numbers below `low` or above `high` (bounds excluded), plus the values that are no number at all."""
    parts: list[st.SearchStrategy[Any]] = [not_a_number, not_finite]
    if low is not None:
        parts.append(st.integers(max_value=int(low) - 1) if integer
                     else st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False))
    if high is not None:
        parts.append(st.integers(min_value=int(high) + 1) if integer
                     else st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False))
    if integer:
        parts.append(fractions)
    return st.one_of(*parts)


# pydantic reads these strings (any case) and 0/1 as booleans; nothing else is one.
_BOOL_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}
not_a_bool = (st.none() | containers | st.integers().filter(lambda i: i not in (0, 1))
              | st.floats().filter(lambda f: f not in (0.0, 1.0))
              | st.text(max_size=8).filter(lambda s: s.strip().lower() not in _BOOL_WORDS))


def _image_mutations(ref: str) -> st.SearchStrategy[str]:
    """Ways to break a valid image reference that Docker's grammar never allows."""
    repo, _, tag = ref.partition(":")
    return st.sampled_from([
        ref.replace("/", " / ", 1), f" {ref}", ref.upper(), repo.upper() + ":" + tag, f"{ref}:", f"{repo}::{tag}",
        f"{repo}//x", f"/{ref}", f"{repo}/", f"-{ref}", f"{repo}@sha256:xyz", f"{repo}@", f"{repo}:{tag}\n",
        f"{repo}:-{tag}", f"{repo}:{'t' * 129}", f"{repo}\t:{tag}", "a" * 1025, "",
    ])


bad_images = (st.sampled_from(["pytorch/pytorch:2.4.0", "nvcr.io/nvidia/pytorch:24.01-py3", "vllm/vllm-openai"])
              .flatmap(_image_mutations) | not_a_string)
bad_geolocations = (
    st.sampled_from(["", " ", "USA", "U", "U1", "12", "US;CA", "US,", ",US", "US CA", "[US]", "Oregon, US", "ÜS"])
    | st.text(LETTERS, min_size=3, max_size=8)
    | not_a_string.filter(lambda v: v is not None)  # null is "no constraint"
)
bad_env = (st.none() | st.integers() | words | st.lists(words, min_size=1, max_size=2)
           | st.dictionaries(st.sampled_from(["", "A=B", "=", "X\0Y"]), words, min_size=1, max_size=1)
           | st.dictionaries(st.sampled_from(["A", "HF_TOKEN"]), not_a_string, min_size=1, max_size=1))
bad_states = (st.text(max_size=10).filter(lambda s: s not in ("running", "stopped"))
              | st.sampled_from(["Running", "STOPPED", "stop", "started", "running "]) | not_a_string)

# field -> invalid values for that field of a group (the program's names; `gpu` is `gpu_name` in check)
BAD_GROUP_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "gpu": not_a_string | st.just(""),
    "count": outside(0, MAX_COUNT, integer=True),
    "num_gpus": outside(1, 16, integer=True),
    "image": bad_images,
    "disk_gb": outside(8, 4096),
    "max_dph": outside(None, 128) | st.floats(max_value=0, allow_nan=False, allow_infinity=False),
    "min_reliability": outside(0, 1),
    "verified_only": not_a_bool,
    "geolocation": bad_geolocations,
    "onstart": not_a_string.filter(lambda v: v is not None),
    "env": bad_env,
    "state": bad_states,
    # VALID is on demand: any bid is refused there (`interruptible: true` missing), and so is a bid that is no
    # price at all; `interruptible` itself is a boolean.
    "max_bid": (outside(None, 128) | st.floats(max_value=0, allow_nan=False, allow_infinity=False)
                | st.floats(min_value=0.01, max_value=0.29) | not_a_number).filter(lambda v: v is not None),
    "interruptible": not_a_bool,
}
REQUIRED = ("gpu", "image", "max_dph")


def typos(name: str) -> list[str]:
    """Misspellings of a field: swapped letters, a dropped letter, capitals, a dash for the underscore."""
    out = {name[:i] + name[i + 1] + name[i] + name[i + 2:] for i in range(len(name) - 1)}
    out |= {name[:i] + name[i + 1:] for i in range(len(name))}
    out |= {name.upper(), name.capitalize(), name.replace("_", "-"), name + "s"}
    return sorted(out - set(Group.model_fields))


unknown_keys = (st.sampled_from([t for f in Group.model_fields for t in typos(f)])
                | st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
                .filter(lambda k: k not in Group.model_fields))
bad_group_names = (
    st.sampled_from(["", "Train", "TRAIN", "1train", "-train", "train_1", "train.a", "train a", "tráin", "a" * 41])
    | st.text(string.ascii_lowercase, min_size=1, max_size=6).map(lambda s: s + "_x")
)
# Stack config values reach the program as strings (or not at all: None here means `vastguard:team` unset).
bad_teams = (st.sampled_from(["", "d", "Data-Science", "9ds", "-ds", "data science", "data_science", "a" * 41, "5"])
             | st.none())
# The marketplace's names, spelt differently, still resolve; these are names it does not know.
unknown_gpus = (st.sampled_from(["RTX_4O90", "RTX 9999", "A1000", "H200", "RTX", "TESLA", "4090", " ", "A100X"])
                | st.text(LETTERS + string.digits + "_ ", min_size=1, max_size=10))


# --- one corruption of a fleet and what the refusal must name ------------------------------------------


@dataclass(frozen=True)
class Corruption:
    """What was made invalid: `where` is the group (None: the team or the fleet itself), `field` the key."""

    where: str | None
    field: str
    kind: str
    value: Any = None


@dataclass
class Case:
    team: Any
    fleet: Any
    corruptions: list[Corruption] = field(default_factory=list)

    @property
    def clean_groups(self) -> list[str]:
        touched = {c.where for c in self.corruptions}
        fleet = self.fleet if isinstance(self.fleet, dict) else {}
        return [g for g in fleet if g not in touched]


@st.composite
def corrupted_group(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], list[Corruption]]:
    group = dict(VALID)
    found: list[Corruption] = []
    kinds = draw(st.lists(st.sampled_from(["value", "value", "value", "unknown_key", "missing"]),
                          min_size=1, max_size=3))
    for kind in kinds:
        if kind == "value":
            key = draw(st.sampled_from(sorted(BAD_GROUP_VALUES)))
            if any(c.field == key for c in found):
                continue
            group[key] = value = draw(BAD_GROUP_VALUES[key])
            found.append(Corruption(name, key, "value", value))
        elif kind == "unknown_key":
            key = draw(unknown_keys)
            if key in group:
                continue
            group[key] = draw(st.integers(0, 3) | words)
            found.append(Corruption(name, key, "unknown_key"))
        else:
            key = draw(st.sampled_from(REQUIRED))
            if any(c.field == key for c in found):
                continue
            del group[key]
            found.append(Corruption(name, key, "missing"))
    return group, found


@st.composite
def invalid_declarations(draw: st.DrawFn) -> Case:
    """A team and fleet with at least one problem the program must refuse, beside groups that are valid."""
    names = draw(st.lists(st.sampled_from(["train", "eval", "notebook", "infer-a", "x1"]), min_size=1,
                          max_size=3, unique=True))
    fleet: dict[str, Any] = {}
    corruptions: list[Corruption] = []
    broken = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    for name in names:
        if name in broken:
            group, found = draw(corrupted_group(name))
            fleet[name] = group
            corruptions += found
        else:
            fleet[name] = dict(VALID)
    if draw(st.booleans()):
        bad = draw(bad_group_names)
        fleet[bad] = dict(VALID)
        corruptions.append(Corruption(bad, "(group name)", "group_name"))
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.none() | st.integers() | st.lists(words, max_size=2))
        fleet[names[0] + "-z"] = shape
        corruptions.append(Corruption(names[0] + "-z", "(group)", "not_a_mapping"))
    team: Any = TEAM
    if draw(st.integers(0, 5)) == 0:
        team = draw(bad_teams)
        corruptions.append(Corruption(None, "vastguard:team", "team"))
    return Case(team=team, fleet=fleet, corruptions=corruptions)


def named(problems: list[str], c: Corruption) -> bool:
    """Whether one of the listed problems names the corruption's group and field."""
    if c.kind == "team":
        return any(p.startswith("vastguard:team:") for p in problems)
    prefix = f"group {c.where!r}"
    if c.kind in ("group_name", "not_a_mapping"):
        return any(p.startswith(prefix + ":") for p in problems)
    return any(p.startswith(f"{prefix}, field {c.field!r}") or p.startswith(f"{prefix}, field '{c.field}.")
               for p in problems)


# --- the preview path: the program under mocks whose engine calls the real provider check -----------------


class CheckingMocks(Mocks):
    """Pulumi's mocks as a previewing engine: each registered instance goes through the provider's `check`."""

    def __init__(self, provider: VastInstanceProvider) -> None:
        self.provider = provider
        self.registered: list[str] = []
        self.failures: dict[str, list[tuple[str, str]]] = {}

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.registered.append(args.name)
        if args.typ == INSTANCE_TYPE:
            result = self.provider.check({}, dict(args.inputs))
            if result.failures:
                self.failures[args.name] = [(f.property, f.reason) for f in result.failures]
        return None, dict(args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def preview_path(provider: VastInstanceProvider, team: Any, fleet: Any) -> tuple[str | None, CheckingMocks]:
    """Run the program as a preview would; the program's refusal text (None if it declared the fleet)."""
    mocks = CheckingMocks(provider)
    pulumi.runtime.set_mocks(mocks, project="vastguard", stack=STACK, preview=True)
    config = {"vastguard:fleet": json.dumps(fleet)}
    if team is not None:
        config["vastguard:team"] = team
    pulumi.runtime.set_all_config(config)
    from program.fleet_program import run

    refused: list[str] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> Any:
        try:
            instances = run()
        except pulumi.RunError as err:
            refused.append(str(err))
            return None
        return pulumi.Output.all(*[i.urn for i in instances.values()])

    program()
    return (refused[0] if refused else None), mocks


def problems_of(text: str) -> list[str]:
    return [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]


@dataclass
class Vast:
    server: EmulatorServer
    known_gpus: list[str]

    @property
    def provider(self) -> VastInstanceProvider:
        """A provider as in a fresh preview: its own account, so nothing it cached or quoted in an earlier
        example (the provider keeps a per-process offer book) carries over."""
        key = f"{TEAM}-{secrets.token_hex(16)}"
        self.server.create_account(api_key=key, balance=1000, username=TEAM)
        provider = VastInstanceProvider()
        provider._settings = ProviderSettings(api_key=key, base_url=self.server.url, provision_timeout=30)
        return provider

    def mutating_calls(self) -> list[str]:
        return [f"{r.method} {r.path} -> {r.status}" for r in self.server.market.requests.records()
                if r.operation in MUTATING]


@pytest.fixture(scope="module")
def vast() -> Iterator[Vast]:
    with EmulatorServer(port=0, seed=7, provision_delay=0) as server:
        with VastClient(api_key="gpu-names-need-no-key", base_url=server.url) as client:
            known = client.gpu_names()
        yield Vast(server, known)
    pulumi.runtime.set_all_config({})


# --- the tests -------------------------------------------------------------------------------------------


def test_the_valid_fleet_passes_both_stages(vast: Vast) -> None:
    """The baseline the generated cases corrupt: without a corruption nothing is refused (so a refusal below
    is caused by the corruption), and a preview's checks make only reads."""
    refused, mocks = preview_path(vast.provider, TEAM, {"notebook": VALID, "train": {**VALID, "count": 2}})
    assert refused is None
    assert sorted(n for n in mocks.registered if n not in (f"vastguard-{STACK}", "team-spend")) == [
        "notebook-0", "train-0", "train-1"]
    assert mocks.failures == {}
    assert vast.server.market.requests.counts().get("search", 0) >= 1  # the check did ask Vast for quotes
    assert vast.mutating_calls() == []


@CI
@given(case=invalid_declarations())
def test_invalid_declarations_are_refused_naming_group_and_field(vast: Vast, case: Case) -> None:
    refused, mocks = preview_path(vast.provider, case.team, case.fleet)
    assert refused is not None, f"the program declared an invalid fleet: {case}"
    assert refused.startswith(f"stack {STACK!r}: invalid fleet declaration in stacks/Pulumi.{STACK}.yaml:")
    problems = problems_of(refused)
    for corruption in case.corruptions:
        assert named(problems, corruption), f"{corruption} is not named in:\n{refused}"
    for clean in case.clean_groups:
        assert not any(p.startswith(f"group {clean!r}") for p in problems), f"valid group {clean!r} blamed"
    # Nothing declared, so the engine would have nothing to check, create or delete.
    assert [n for n in mocks.registered if n != f"vastguard-{STACK}"] == []
    assert vast.mutating_calls() == []


@settings(CI, max_examples=40)
@given(value=(not_a_string | words).filter(lambda v: v is not None and not isinstance(v, dict)))
def test_a_fleet_that_is_not_a_mapping_is_refused(vast: Vast, value: Any) -> None:
    refused, mocks = preview_path(vast.provider, TEAM, value)
    assert refused is not None
    assert "vastguard:fleet: must be a mapping of group name -> group" in refused
    assert [n for n in mocks.registered if n != f"vastguard-{STACK}"] == []
    assert vast.mutating_calls() == []


@settings(CI, max_examples=60)
@given(gpu=unknown_gpus, count=st.integers(1, 3))
def test_unknown_gpus_pass_the_program_and_are_refused_by_check(vast: Vast, gpu: str, count: int) -> None:
    """Only the marketplace knows its GPU names, so the program declares the instances and each check refuses
    them, naming `gpu_name` on the group's instances; the quote is never asked for an unknown GPU."""
    assume(not gpus.family(gpu, vast.known_gpus))  # text that happens to name a real GPU is not a case here
    searches = vast.server.market.requests.counts().get("search", 0)
    refused, mocks = preview_path(vast.provider, TEAM, {"notebook": VALID, "eval": {**VALID, "gpu": gpu,
                                                                                    "count": count}})
    assert refused is None
    assert set(mocks.failures) == {f"eval-{i}" for i in range(count)}, mocks.failures
    for failures in mocks.failures.values():
        assert [prop for prop, _ in failures] == ["gpu_name"]
        assert f"unknown GPU name {gpu!r}" in failures[0][1]
        assert f"fix the group's `gpu` in stacks/Pulumi.{STACK}.yaml" in failures[0][1]
    assert vast.server.market.requests.counts().get("search", 0) <= searches + 1  # the valid group's quote only
    assert vast.mutating_calls() == []


# --- the provider's own validation, for a program that is not ours (or a declaration model that drifts) ----

SPEC = InstanceSpec(team=TEAM, gpu_name="RTX_3090", image="jupyter/pytorch-notebook:latest", disk_gb=32,
                    max_dph=0.30, label=f"{TEAM}/notebook-0")
BAD_INPUTS: dict[str, st.SearchStrategy[Any]] = {
    "team": not_a_string | st.just(""),
    "gpu_name": not_a_string | st.just(""),
    "num_gpus": BAD_GROUP_VALUES["num_gpus"],
    "image": BAD_GROUP_VALUES["image"],
    "disk_gb": BAD_GROUP_VALUES["disk_gb"],
    "max_dph": BAD_GROUP_VALUES["max_dph"],
    "min_reliability": BAD_GROUP_VALUES["min_reliability"],
    "verified_only": not_a_bool,
    "geolocation": bad_geolocations,
    "label": not_a_string.filter(lambda v: v is not None) | st.text(min_size=201, max_size=260),
    "onstart": BAD_GROUP_VALUES["onstart"],
    "env": bad_env,
    "state": bad_states,
    # VALID is on demand: any bid is refused there (`interruptible: true` missing), and so is a bid that is no
    # price at all; `interruptible` itself is a boolean.
    "max_bid": (outside(None, 128) | st.floats(max_value=0, allow_nan=False, allow_infinity=False)
                | st.floats(min_value=0.01, max_value=0.29) | not_a_number).filter(lambda v: v is not None),
    "interruptible": not_a_bool,
}


@settings(CI, max_examples=120)
@given(data=st.data())
def test_provider_check_refuses_invalid_inputs_naming_the_field(vast: Vast, data: st.DataObject) -> None:
    props = {**SPEC.model_dump(), "ownership_tag": f"vg:{STACK}/notebook-0", "quote": None, "__provider": "x"}
    fields = data.draw(st.lists(st.sampled_from(sorted(BAD_INPUTS)), min_size=1, max_size=3, unique=True))
    missing = data.draw(st.lists(st.sampled_from(["team", "gpu_name", "image", "max_dph"]), max_size=1))
    for name in fields:
        props[name] = data.draw(BAD_INPUTS[name], label=name)
    for name in missing:
        props.pop(name, None)
    result = vast.provider.check({}, props)
    named_props = {f.property.split(".")[0] for f in result.failures}
    assert named_props == set(fields) | set(missing), [(f.property, f.reason) for f in result.failures]
    assert all(f.reason for f in result.failures)
    assert "quote" not in result.inputs or result.inputs["quote"] is None  # refused before any quote
    assert vast.mutating_calls() == []
