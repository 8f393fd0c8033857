"""What the access providers (`vastai:Team`, `vastai:TeamRole`, `vastai:TeamMember`, `vastai:ApiKey`) share:
which key acts where, one client per key per process, validation through the `fleet` contracts, and failures
as one line naming the fix.

Which key acts where (vastai 1.9.1 and Vast's docs; emulator/README.md, "Which key acts where"):
- the platform owner's *personal* key (the platform stack's `vastai:apiKey`, or VAST_API_KEY) creates teams; it
  keeps acting on the personal account;
- inside a team everything (roles, invitations, member removal, the team's scoped keys, reading members) needs a
  key made *in the team's context*, and the first such key only comes from Vast's console (switch into the team,
  create a key): the *bootstrap key*, one per team, in the platform stack's secret config
  `vastguard:teamKeys.<team>`. A key it creates never holds more than it does.

Keys are read in `configure` (the engine hands over the decrypted stack config) and never pickled: the provider
object in state holds nothing. A team's bootstrap key is checked once per process to act in that team (its
`/users/current` is the team's account), so a key pasted under the wrong team fails before it changes anything.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pulumi.dynamic import CheckFailure, ConfigureRequest
from pulumi.runtime import rpc
from pydantic import BaseModel, ValidationError

from fleet.envelope import EnvelopeError
from fleet.platform_declaration import TEAM_KEYS_CONFIG, missing_team_key, set_team_key_command
from fleet.stack_config import API_KEY_CONFIG, SET_KEY_COMMAND
from providers.configured import ConfiguredProvider
from providers.host import fail
from providers.settings import settings_from
from vastclient import DEFAULT_BASE_URL, AuthError, VastClient, VastError

M = TypeVar("M", bound=BaseModel)

PLATFORM_STACK_HINT = "platform"


class AccessError(Exception):
    """A platform resource cannot be acted on as asked; the message says what to do (never holds a key)."""


@dataclass(frozen=True)
class AccessSettings:
    personal_key: str | None = field(repr=False)
    base_url: str | None
    team_keys: Mapping[str, str] = field(repr=False, default_factory=dict)


def _team_keys(raw: Any) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise AccessError(f"{TEAM_KEYS_CONFIG} is not an object of team -> key; set each with "
                              f"`{set_team_key_command('<team>')}`") from None
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise AccessError(f"{TEAM_KEYS_CONFIG} must map each team to its key (text); set each with "
                          f"`{set_team_key_command('<team>')}`")
    return {team: key.strip() for team, key in raw.items() if key.strip()}


def access_settings_from(get: Callable[[str], Any], environ: Mapping[str, str] | None = None) -> AccessSettings:
    """`get` looks up fully-qualified stack config keys (the dynamic provider's `Config.get`)."""
    base = settings_from(get, environ)
    return AccessSettings(personal_key=base.api_key, base_url=base.base_url,
                          team_keys=_team_keys(get(TEAM_KEYS_CONFIG)))


_CLIENTS: dict[tuple[str, str], VastClient] = {}
_VERIFIED: dict[tuple[str, str], int] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(base_url: str | None, key: str) -> VastClient:
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    with _CLIENTS_LOCK:
        client = _CLIENTS.get((url, key))
        if client is None:
            client = _CLIENTS[(url, key)] = VastClient(api_key=key, base_url=url)
        return client


def known_inputs(props: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The contract's fields of `props` that are known: at preview an input computed from another resource
    (a new team's id) is the engine's unknown sentinel, which the contract's default (None) stands for."""
    return {k: v for k, v in props.items() if k in model.model_fields and v != rpc.UNKNOWN}


def validate(model: type[M], news: Mapping[str, Any]) -> tuple[M | None, list[CheckFailure]]:
    """`news` as the contract reads it, or field-named check failures (the pack's and the declaration's
    errors name the same fields)."""
    try:
        return model.model_validate(known_inputs(news, model)), []
    except ValidationError as err:
        failures = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "inputs"
            message = e["msg"].removeprefix("Value error, ")
            failures.append(CheckFailure(where, f"{message} (got {e.get('input')!r})"))
        return None, failures


def checked_inputs(inputs: BaseModel, news: Mapping[str, Any]) -> dict[str, Any]:
    """What `check` returns: the contract's canonical values (a permission document in canonical form), the
    unknowns left unknown."""
    return {**news, **inputs.model_dump(mode="json"),
            **{k: v for k, v in news.items() if v == rpc.UNKNOWN}}


def explain_access(err: VastError, *, base_url: str | None, team: str, doing: str, uses: str) -> str:
    """One line: what failed, and the fix. `uses` says which key the call used (the team's or the personal)."""
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if isinstance(err, AuthError) and uses == "team":
        return (f"{team}: could not {doing}: Vast.ai at {url} refused team {team}'s key ({err}); it must be a "
                f"key made in the team's context by its owner (the console's), unrevoked: replace it with "
                f"`{set_team_key_command(team)} --stack <platform stack>`")
    if isinstance(err, AuthError):
        return (f"{team}: could not {doing}: Vast.ai at {url} refused the platform owner's personal key ({err}); "
                f"set it with `{SET_KEY_COMMAND} --stack <platform stack>` (it needs user_write to create teams)")
    return f"{team}: could not {doing} on Vast.ai at {url}: {err}"


class AccessProvider(ConfiguredProvider):
    """The base of the four access providers: the Vast endpoint and the platform owner's key as every provider
    reads them (providers/configured.py), the teams' bootstrap keys beside them; clients, reporting."""

    _access: AccessSettings | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._access = None

    def configure(self, req: ConfigureRequest) -> None:
        super().configure(req)
        try:
            self._access = access_settings_from(req.config.get)
        except AccessError as err:
            fail(str(err))

    @property
    def settings(self) -> AccessSettings:
        return self._access or access_settings_from(lambda _k: None)

    def personal(self) -> VastClient:
        key = self.settings.personal_key
        if not key:
            raise AccessError(f"no personal key of the platform owner to create teams with: `{SET_KEY_COMMAND} "
                              f"--stack <platform stack>` (the owner's own key; {API_KEY_CONFIG})")
        return _client(self.settings.base_url, key)

    def has_team_key(self, team: str) -> bool:
        return team in self.settings.team_keys

    def team_client(self, team: str, team_id: int | None) -> VastClient:
        """A client acting in `team`, checked (once per process) to act in account `team_id`."""
        key = self.settings.team_keys.get(team)
        if not key:
            raise AccessError(missing_team_key(team))
        client = _client(self.settings.base_url, key)
        url = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        with _CLIENTS_LOCK:
            acts_in = _VERIFIED.get((url, key))
        if acts_in is None:
            acts_in = client.current_user().id
            with _CLIENTS_LOCK:
                _VERIFIED[(url, key)] = acts_in
        if team_id is not None and acts_in != team_id:
            raise AccessError(f"{team}: the key in {TEAM_KEYS_CONFIG}.{team} acts in Vast account {acts_in}, not in "
                              f"team {team} ({team_id}): it was made in another context; make one inside team "
                              f"{team} in the console and store it with `{set_team_key_command(team)}`")
        return client

    @contextlib.contextmanager
    def reported(self, team: str, doing: str, then: str, *, uses: str = "team") -> Iterator[None]:
        """A failure as one line for the user (not gRPC's `Exception calling application`), never a key."""
        try:
            yield
        except VastError as err:
            fail(f"{explain_access(err, base_url=self.settings.base_url, team=team, doing=doing, uses=uses)}; {then}")
        except (AccessError, EnvelopeError) as err:
            fail(f"{team}: {err}; {then}" if isinstance(err, EnvelopeError) else f"{err}; {then}")
