"""Key delivery: a team stack whose config says `vastguard:keyFrom: <platform stack>` holds no Vast key at all.
Its key comes from the platform stack's envelope for the team (`key_envelopes.<team>.<kind>`, fleet/envelope.py),
opened here with the recipient's secret from the environment, and reaches the `pulumi` child process as
`VAST_API_KEY`, which the provider falls back to (providers/settings.py). In memory only: never printed, never
in argv, never in the team stack's config or state.

Which key a command gets: `preview` the team's read-only *preview* key (`VASTGUARD_PREVIEW_SECRET_<TEAM>` opens
it); `up`, `destroy`, `refresh` (and `import`, `watch`) the *deploy* key (`VASTGUARD_DEPLOY_SECRET_<TEAM>`);
anything else none. So a pull request's preview job, which holds only the preview secret, can never open the
deploy key, and no team's job can open another team's.

Where the envelope is read: the platform stack's current checkpoint in the state backend, as a file
(`reports.sources.stack_outputs`: `file://`, `s3://`, `azblob://`; the job needs read access to the bucket, not
the platform's passphrase), or through `pulumi stack output` on Pulumi Cloud.

After a rotation the platform stack holds the new key's envelope; the team's next run opens it. Nothing in the
team's state names the old key, so refresh and destroy keep working, and no instance is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from budget.keys import KeyLookup, KeyProblem
from fleet.envelope import Envelope, EnvelopeError, KeyKind, open_envelope, recipient_env
from fleet.platform_declaration import KEY_FROM_CONFIG, PLATFORM_CONFIG
from fleet.stack_config import API_KEY_CONFIG
from reports.sources import Bucket, Runner, SourceError, stack_outputs
from vastclient import API_KEY_ENV

__all__ = [
    "COMMAND_KINDS",
    "DeliveredKey",
    "DeliveryError",
    "KeySource",
    "command_kind",
    "deliver",
    "key_source",
]

COMMAND_KINDS: Mapping[str, KeyKind] = {
    "preview": "preview",
    "up": "deploy", "update": "deploy", "destroy": "deploy", "refresh": "deploy", "import": "deploy",
    "watch": "deploy",
}
# Pulumi's global flags that take a value (so the subcommand is found after them).
_VALUE_FLAGS = frozenset({"-C", "--cwd", "--color", "--logflow", "--tracing", "--profiling", "--memprofilerate",
                          "-v", "--verbose"})


class DeliveryError(RuntimeError):
    """A key cannot be delivered; the message names what to set or run (never a key or a secret)."""


@dataclass(frozen=True)
class KeySource:
    """Where a team stack's key comes from: the team, and the platform stack holding its envelopes."""

    stack: str
    team: str
    platform_stack: str
    platform_project: str | None = None


@dataclass(frozen=True)
class DeliveredKey:
    team: str
    kind: KeyKind
    key_id: int
    rotation: str
    platform_stack: str
    key: str = field(repr=False)

    def env(self) -> dict[str, str]:
        return {API_KEY_ENV: self.key}

    def describe(self) -> str:
        return (f"vastguard: {self.team}'s {self.kind} key #{self.key_id} (rotation {self.rotation}), from the "
                f"platform stack {self.platform_stack}")


def _stack_config_dir(project_dir: Path) -> Path:
    try:
        project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    except OSError:
        return project_dir
    return project_dir / str(project.get("stackConfigDir") or ".")


def project_name(project_dir: Path) -> str:
    try:
        project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text()) or {}
    except OSError as err:
        raise DeliveryError(f"no Pulumi project in {project_dir} ({err.strerror})") from None
    return str(project.get("name") or "")


def stack_config(project_dir: Path, stack: str) -> dict[str, Any]:
    """The stack's committed config (`stacks/Pulumi.<stack>.yaml`), {} when there is none."""
    path = _stack_config_dir(project_dir) / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError:
        return {}
    config = data.get("config") if isinstance(data, dict) else None
    return config if isinstance(config, dict) else {}


def is_platform_stack(project_dir: Path, stack: str) -> bool:
    return PLATFORM_CONFIG in stack_config(project_dir, stack)


def key_source(project_dir: Path, stack: str) -> KeySource | None:
    """Where `stack`'s key comes from, or None when it brings its own (`vastai:apiKey`) or needs none."""
    config = stack_config(project_dir, stack)
    key_from = config.get(KEY_FROM_CONFIG)
    if key_from is None:
        return None
    name = stack.rsplit("/", 1)[-1]
    if not isinstance(key_from, str) or not key_from.strip():
        raise DeliveryError(f"stack {name}: {KEY_FROM_CONFIG} must name the platform stack (e.g. `platform`)")
    if API_KEY_CONFIG in config:
        raise DeliveryError(f"stack {name} sets both {API_KEY_CONFIG} and {KEY_FROM_CONFIG}: its key comes from one "
                            f"place; remove one (`pulumi config rm {API_KEY_CONFIG} --stack {name}` to take the "
                            "platform's keys)")
    team = config.get("vastguard:team") or name
    project, _, platform = key_from.strip().rpartition("/")
    return KeySource(stack=name, team=str(team), platform_stack=platform, platform_project=project or None)


def deliver(source: KeySource, kind: KeyKind, *, backend_url: str, project: str, environ: Mapping[str, str],
            cli_runner: Runner | None = None, bucket_factory: Callable[[str], Bucket] | None = None) -> DeliveredKey:
    """The team's `kind` key, opened from the platform stack's envelope with the recipient secret in `environ`."""
    platform = source.platform_stack
    try:
        outputs = stack_outputs(backend_url, source.platform_project or project, platform, cli_runner=cli_runner,
                                bucket_factory=bucket_factory)
    except SourceError as err:
        raise DeliveryError(f"{source.team}'s {kind} key: cannot read the platform stack {platform}: {err}") from None
    if outputs.get("platform") is not True:
        raise DeliveryError(f"stack {platform} (named by {KEY_FROM_CONFIG} in stack {source.stack}) is not a platform "
                            f"stack: it exports no key envelopes; point {KEY_FROM_CONFIG} at the stack that declares "
                            f"{PLATFORM_CONFIG}")
    envelopes = outputs.get("key_envelopes")
    raw = envelopes.get(source.team, {}).get(kind) if isinstance(envelopes, dict) and isinstance(
        envelopes.get(source.team), dict) else None
    if raw is None:
        pending = source.team in (outputs.get("pending_bootstrap") or [])
        why = (f"the platform holds no key inside team {source.team} yet (it is listed under pending_bootstrap): "
               "make one in Vast's console and store it in the platform stack's vastguard:teamKeys"
               if pending else f"team {source.team} is not in the platform stack's declaration: add it with "
                               f"`vastguard team add {source.team}`")
        raise DeliveryError(f"the platform stack {platform} has no {kind} key for team {source.team}: {why}, then run "
                            f"the platform stack's `pulumi up`")
    try:
        envelope = Envelope.parse(raw, where=f"key_envelopes.{source.team}.{kind} of stack {platform}")
        expected = recipient_env(source.team, kind)
        if envelope.team != source.team or envelope.kind != kind or envelope.recipient != expected:
            raise EnvelopeError(f"key_envelopes.{source.team}.{kind} of stack {platform} is sealed for "
                                f"{envelope.team}'s {envelope.kind} job, not {source.team}'s {kind} job")
        key = open_envelope(envelope, environ.get(expected))
    except EnvelopeError as err:
        raise DeliveryError(f"{source.team}'s {kind} key: {err}") from None
    return DeliveredKey(team=source.team, kind=kind, key_id=envelope.key_id, rotation=envelope.rotation,
                        platform_stack=platform, key=key)


# --- the command lines vastguard passes to pulumi -----------------------------------------------------------


def _value_of(args: Sequence[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def command_kind(pulumi_args: Sequence[str]) -> tuple[str | None, KeyKind | None]:
    """The pulumi subcommand and the kind of key it needs (None: no key)."""
    skip = False
    for arg in pulumi_args:
        if skip:
            skip = False
            continue
        if arg in _VALUE_FLAGS:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg, COMMAND_KINDS.get(arg)
    return None, None


def stack_of_args(pulumi_args: Sequence[str]) -> str | None:
    return _value_of(pulumi_args, "--stack", "-s")


def project_dir_of_args(pulumi_args: Sequence[str], default: Path) -> Path:
    cwd = _value_of(pulumi_args, "--cwd", "-C")
    return (default / cwd).resolve() if cwd else default


def selected_stack(pulumi: Path, project_dir: Path, env: Mapping[str, str]) -> str | None:
    """The stack `pulumi` would use without `--stack` (the selected one), or None."""
    result = subprocess.run([str(pulumi), "stack", "--show-name", "--non-interactive"], cwd=project_dir,
                            env=dict(env), capture_output=True, text=True, timeout=120, check=False)
    name = result.stdout.strip()
    return name or None


def delivered_env(pulumi_args: Sequence[str], *, project_dir: Path, env: Mapping[str, str],
                  stack_lookup: Callable[[], str | None], cli_runner: Runner | None = None,
                  log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict[str, str]:
    """The environment additions `pulumi <pulumi_args>` needs: the team's key when its stack takes keys from
    the platform and the command needs one; {} otherwise."""
    _command, kind = command_kind(pulumi_args)
    if kind is None:
        return {}
    stack = stack_of_args(pulumi_args) or stack_lookup()
    if stack is None:
        return {}
    source = key_source(project_dir, stack)
    if source is None:
        return {}
    backend = env.get("PULUMI_BACKEND_URL") or os.environ.get("PULUMI_BACKEND_URL", "")
    delivered = deliver(source, kind, backend_url=backend, project=project_name(project_dir), environ=env,
                        cli_runner=cli_runner)
    log(delivered.describe())
    return delivered.env()


# --- the reports' keys -------------------------------------------------------------------------------------


def job_secret_env(kind: str) -> str:
    """The job's recipient secret under a name without the team (`VASTGUARD_PREVIEW_SECRET`): a workflow cannot
    name an env variable after the matrix's team, so it sets this one from `secrets[matrix.preview_secret]`."""
    return f"VASTGUARD_{kind.upper()}_SECRET"


def read_key_of(stack: str, *, project_dir: Path, backend_url: str,
                environ: Mapping[str, str] | None = None) -> str | None:
    """The read-only preview key of a team stack that takes its keys from the platform, for the reports' charge
    reads (billing_read), opened with the job's preview secret (`VASTGUARD_PREVIEW_SECRET_<TEAM>` or the job's
    team-less `VASTGUARD_PREVIEW_SECRET`); None for a stack that brings its own key or a job without the secret.
    Raises DeliveryError when the secret is there but the envelope does not open."""
    env = dict(os.environ if environ is None else environ)
    source = key_source(project_dir, stack)
    if source is None:
        return None
    name = recipient_env(source.team, "preview")
    if not env.get(name) and env.get(job_secret_env("preview")):
        env[name] = env[job_secret_env("preview")]
    if not env.get(name):
        return None
    return deliver(source, "preview", backend_url=backend_url, project=project_name(project_dir), environ=env).key


# --- the budget commands' keys ------------------------------------------------------------------------------


class DeliveredKeys:
    """The budget commands' keys (budget/keys.py's KeyLookup): a team's own `VASTGUARD_KEY_<TEAM>` when set, else,
    for a team stack that takes its keys from the platform, its deploy key opened from the envelope with
    `VASTGUARD_DEPLOY_SECRET_<TEAM>` (the guard stops and starts instances: instance write). The team's stack is
    the one named after it, as `vastguard team add` makes it."""

    def __init__(self, fallback: KeyLookup, *, project_dir: Path, backend_url: str,
                 environ: Mapping[str, str] | None = None) -> None:
        self._fallback = fallback
        self._project_dir = project_dir
        self._backend_url = backend_url
        self._env = os.environ if environ is None else environ
        self._opened: dict[str, str] = {}

    def team_key(self, team: str) -> str | None:
        key = self._fallback.team_key(team)
        if key:
            return key
        if team in self._opened:
            return self._opened[team]
        source = key_source(self._project_dir, team)
        if source is None or not self._env.get(recipient_env(source.team, "deploy")):
            return None
        try:
            delivered = deliver(source, "deploy", backend_url=self._backend_url,
                                project=project_name(self._project_dir), environ=self._env)
        except DeliveryError as err:
            raise KeyProblem(str(err)) from None
        self._opened[team] = delivered.key
        return delivered.key

    def owner_key(self, team: str) -> str | None:
        return self._fallback.owner_key(team) or self.team_key(team)

    def platform_key(self) -> str | None:
        return self._fallback.platform_key()

    def __repr__(self) -> str:
        return "DeliveredKeys(***)"
