"""Drive a policy pack over Pulumi's analyzer gRPC protocol, exactly as the engine does, without the engine.

Why: a rule can pass its unit tests and still fail in the pack (an import that only works from the repo
root, a schema the engine would reject, a proxy raising UnknownValueError that the SDK turns into an advisory,
a level the config file overrides). This harness runs the pack the way the engine's Python language host
starts it (`python -u -m pulumi.policy <engine> <pack dir>`, cwd = the pack, PULUMI_PROJECT / PULUMI_STACK /
PULUMI_DRY_RUN set), reads the port from its first stdout line, reconciles the policy config the way the
engine does (schema defaults, then the `--policy-pack-config` file, `all` first), and calls Configure
(always with an enforcement level per policy), Analyze and AnalyzeStack.

Usage:

    with AnalyzerProcess(stack="ml-engineering") as pack:
        pack.configure(team_file("ml-engineering"))
        diags = pack.analyze(Resource(name="train-0", stack="ml-engineering", props={...}))
        assert not mandatory(diags)

Not reproduced: the engine's JSON-schema validation of the config (no jsonschema library here; the team files
are validated by policies.teamfile instead) and secret/`__`-key stripping of properties.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, plugin_pb2

from fleet.instance import INSTANCE_TYPE

__all__ = [
    "PACK_DIR",
    "PROJECT",
    "AnalyzerProcess",
    "Diagnostic",
    "PolicyConfigured",
    "Resource",
    "advisory",
    "mandatory",
    "parse_file_config",
    "reconcile",
    "team_file",
]

REPO = Path(__file__).resolve().parents[2]
PACK_DIR = REPO / "policies"
PYTHON = REPO / ".venv" / "bin" / "python"
PROJECT = "vastguard"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")


def team_file(team: str) -> dict[str, Any]:
    """The parsed JSON of policies/teams/<team>.json (what `--policy-pack-config` would pass)."""
    data: dict[str, Any] = json.loads((PACK_DIR / "teams" / f"{team}.json").read_text())
    return data


@dataclass(frozen=True)
class Resource:
    """One resource as the engine describes it to the analyzer (props: inputs for Analyze, outputs for
    AnalyzeStack). Unknown values are the engine's sentinel strings (pulumi_policy.proxy.UNKNOWN_*)."""

    name: str
    props: Mapping[str, Any]
    stack: str
    type: str = INSTANCE_TYPE
    project: str = PROJECT

    @property
    def urn(self) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{self.type}::{self.name}"

    def struct(self) -> struct_pb2.Struct:
        out = struct_pb2.Struct()
        out.update(dict(self.props))
        return out


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    message: str
    urn: str
    description: str


def mandatory(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.level == "mandatory"]


def advisory(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.level == "advisory"]


@dataclass(frozen=True)
class PolicyConfigured:
    level: str | None
    properties: dict[str, Any] | None


def parse_file_config(raw: Mapping[str, Any]) -> dict[str, PolicyConfigured]:
    """The engine's parsePolicyPackConfig: a string is a level; an object may carry `enforcementLevel`."""
    out: dict[str, PolicyConfigured] = {}
    for key, value in raw.items():
        if key == "environments":
            continue
        if isinstance(value, str):
            if value not in LEVELS:
                raise ValueError(f"parsing enforcement level for {key!r}: {value!r} is not a valid enforcement level")
            out[key] = PolicyConfigured(value, None)
        elif isinstance(value, Mapping):
            props = dict(value)
            level = props.pop("enforcementLevel", None)
            if level is not None and level not in LEVELS:
                raise ValueError(f"parsing enforcement level for {key!r}: {level!r} is not a valid enforcement level")
            if level is None and not props:
                continue
            out[key] = PolicyConfigured(level, props or None)
        else:
            raise ValueError(f"parsing {key!r}: {value!r} is not a valid value; must be a string or object")
    return out


def reconcile(info: analyzer_pb2.AnalyzerInfo, file_config: Mapping[str, Any] | None) -> dict[str, PolicyConfigured]:
    """The engine's ReconcilePolicyPackConfig: schema defaults and default levels, then the file (whose `all`
    sets every level before the per-policy entries apply)."""
    result: dict[str, PolicyConfigured] = {}
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        defaults = {k: v["default"] for k, v in schema.items() if isinstance(v, dict) and "default" in v}
        level = analyzer_pb2.EnforcementLevel.Name(policy.enforcementLevel).lower()
        result[policy.name] = PolicyConfigured(level, defaults or None)
    given = parse_file_config(file_config or {})
    everything = given.get("all")
    if everything is not None and everything.level is not None:
        result = {k: PolicyConfigured(everything.level, v.properties) for k, v in result.items()}
    for name, cfg in given.items():
        current = result.get(name, PolicyConfigured(None, None))
        props = dict(current.properties or {})
        props.update(cfg.properties or {})
        result[name] = PolicyConfigured(cfg.level or current.level, props or None)
    return result


@dataclass
class AnalyzerProcess:
    """The pack as a child process serving the analyzer protocol; a context manager that kills it on exit."""

    stack: str
    project: str = PROJECT
    dry_run: bool = True
    pack_dir: Path = PACK_DIR
    python: Path = PYTHON
    startup_timeout: float = 60.0
    rpc_timeout: float = 30.0
    extra_env: Mapping[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _channel: grpc.Channel | None = field(default=None, init=False, repr=False)
    _stub: analyzer_pb2_grpc.AnalyzerStub | None = field(default=None, init=False, repr=False)
    _stderr: list[str] = field(default_factory=list, init=False, repr=False)
    _info: analyzer_pb2.AnalyzerInfo | None = field(default=None, init=False, repr=False)

    def start(self) -> Self:
        if self._proc is not None:  # `with AnalyzerProcess(...).start()` must not start (and orphan) a second one
            return self
        env = {**os.environ, "PULUMI_PROJECT": self.project, "PULUMI_STACK": self.stack,
               "PULUMI_DRY_RUN": "true" if self.dry_run else "false", **self.extra_env}
        self._proc = subprocess.Popen(
            [str(self.python), "-u", "-m", "pulumi.policy", "x", str(self.pack_dir)],
            cwd=self.pack_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc.stdout, lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self._proc.stderr, self._keep_stderr), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        port = None
        while port is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._proc.poll() is not None:
                self.close()
                raise RuntimeError(f"policy pack did not print its port within {self.startup_timeout}s "
                                   f"(exit {self._proc.returncode}); stderr:\n{self.stderr}")
            try:
                line = lines.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            text = line.decode().strip()
            if text.isdigit():
                port = int(text)
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self._channel).result(timeout=max(deadline - time.monotonic(), 1.0))
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
        return self

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in iter(stream.readline, b""):
            sink(line)

    def _keep_stderr(self, line: bytes) -> None:
        self._stderr.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def stub(self) -> analyzer_pb2_grpc.AnalyzerStub:
        if self._stub is None:
            raise RuntimeError("AnalyzerProcess not started")
        return self._stub

    def plugin_version(self) -> str:
        info: plugin_pb2.PluginInfo = self.stub.GetPluginInfo(empty_pb2.Empty(), timeout=self.rpc_timeout)
        return info.version

    def info(self) -> analyzer_pb2.AnalyzerInfo:
        if self._info is None:
            self._info = self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=self.rpc_timeout)
        return self._info

    def configure(self, file_config: Mapping[str, Any] | None) -> dict[str, PolicyConfigured]:
        """Configure as `--policy-pack-config FILE` would (None = no file: schema defaults only)."""
        reconciled = reconcile(self.info(), file_config)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, cfg in reconciled.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = analyzer_pb2.EnforcementLevel.Value((cfg.level or "advisory").upper())
            if cfg.properties:
                entry.properties.update(cfg.properties)
        self.stub.Configure(request, timeout=self.rpc_timeout)
        return reconciled

    def analyze(self, resource: Resource) -> list[Diagnostic]:
        request = analyzer_pb2.AnalyzeRequest(
            type=resource.type, properties=resource.struct(), urn=resource.urn, name=resource.name)
        return self._diagnostics(self.stub.Analyze(request, timeout=self.rpc_timeout))

    def analyze_stack(self, resources: Sequence[Resource], *, with_stack_resource: bool = True) -> list[Diagnostic]:
        """AnalyzeStack over the resources, preceded (as in every real stack) by the pulumi:pulumi:Stack one."""
        items = list(resources)
        if with_stack_resource:
            items.insert(0, Resource(name=f"{self.project}-{self.stack}", props={}, stack=self.stack,
                                     type="pulumi:pulumi:Stack", project=self.project))
        request = analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(type=r.type, properties=r.struct(), urn=r.urn, name=r.name)
            for r in items
        ])
        return self._diagnostics(self.stub.AnalyzeStack(request, timeout=self.rpc_timeout))

    @staticmethod
    def _diagnostics(response: analyzer_pb2.AnalyzeResponse) -> list[Diagnostic]:
        return [
            Diagnostic(policy=d.policyName, level=analyzer_pb2.EnforcementLevel.Name(d.enforcementLevel).lower(),
                       message=d.message, urn=d.urn, description=d.description)
            for d in response.diagnostics
        ]
