"""Control operations: what `/_emulator/` does to the market (reset and reseed, hand-made offers, accounts and
balances, the virtual clock, configuration, forced instance states, races, the state dump). No key needed,
no HTTP here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from emulator import catalogue
from emulator.bodies import (
    AccountBody,
    BalanceBody,
    ClockBody,
    ConfigBody,
    CreateTeamBody,
    FaultBody,
    ForceStateBody,
    OfferBody,
    RaceBody,
    TeamBody,
    TeamKeyBody,
)
from emulator.catalogue import Offer
from emulator.errors import Conflict, InvalidArgs, InvalidPermissionsError, NoSuchInstance, NotFound
from emulator.faults import FaultBook, FaultRule, RequestRecord
from emulator.keys import parse_permissions
from emulator.results import ClockReading, Health, OfferQuote, Reseeded, StateDump, UserView
from emulator.state import Account, ApiKey, EmulatorConfig, Instance, Invitation, MarketState, RaceRule, key_digest
from emulator.teams import TeamOperations
from emulator.utilization import GpuUtilBody, curve_of
from fleet.permissions import InvalidPermissions, KeyParams


class ControlOperations(TeamOperations):
    """What the control plane can do to the market."""

    def health(self) -> Health:
        with self.lock:
            return Health(offers=len(self.state.offers), accounts=len(self.state.accounts), seed=self.state.seed)

    def reset(self, *, seed: int | None = None, offers: int | None = None) -> Health:
        """Back to a fresh market: new catalogue, no accounts, clock following real time, default config."""
        with self.lock:
            now = self.clock.reset()
            seed = self.state.seed if seed is None else seed
            count = self.state.catalogue_size if offers is None else offers
            self.state = MarketState(seed=seed, catalogue_size=count, seeded_at=now,
                                     offers={o.id: o for o in catalogue.generate(seed, count)},
                                     config=self.defaults.model_copy(), clock=self.clock.snapshot(),
                                     billed_until=now)
            self._by_key = {}
            self._spent = {}
            self.faults = FaultBook(seed=seed)
            self.limiter.reset()
            self.requests.clear()
            self._touch()
            return self.health()

    def reseed(self, *, seed: int, offers: int | None = None) -> int:
        """A new catalogue; offers held by instances stay (their renters still have them)."""
        with self.lock:
            now = self._sync()
            count = self.state.catalogue_size if offers is None else offers
            held = {oid: self.state.offers[oid] for oid in self.state.taken if oid in self.state.offers}
            fresh = {o.id: o for o in catalogue.generate(seed, count) if o.id not in held}
            self.state.offers = {**fresh, **held}
            self.state.seed, self.state.catalogue_size, self.state.seeded_at = seed, count, now
            self._touch()
            return len(fresh)

    def reseed_market(self, *, seed: int, offers: int | None = None) -> Reseeded:
        with self.lock:
            fresh = self.reseed(seed=seed, offers=offers)
            return Reseeded(seed=seed, offers=len(self.state.offers), new_offers=fresh)

    def add_offer(self, body: OfferBody) -> Offer:
        with self.lock:
            self._sync()
            offer_id = body.id
            if offer_id is None:
                while self.state.next_offer_id in self.state.offers:
                    self.state.next_offer_id += 1
                offer_id = self.state.next_offer_id
                self.state.next_offer_id += 1
            elif offer_id in self.state.offers:
                raise Conflict(f"offer {offer_id} already exists")
            offer = catalogue.custom_offer(
                offer_id, 80_000 + offer_id % 10_000, gpu_name=body.gpu_name, num_gpus=body.num_gpus,
                dph_base=body.dph_base, storage_cost=body.storage_cost, reliability=body.reliability,
                verification=body.verification, geolocation=body.geolocation, disk_space=body.disk_space,
                rentable=body.rentable, external=body.external)
            self.state.offers[offer.id] = offer
            self._touch()
            return offer

    def add_listed_offer(self, body: OfferBody) -> tuple[OfferQuote, float]:
        """A hand-made offer, as a default search prices it (on demand, the CLI's 5 GB of storage)."""
        with self.lock:
            offer = self.add_offer(body)
            quote = OfferQuote(offer=offer, dph_base=offer.dph_base, allocated_storage=Decimal(5), is_bid=False,
                               listed_since=self.state.seeded_at)
            return quote, self.clock.now()

    def create_account(self, body: AccountBody) -> UserView:
        """A user account and its main key (full power: every category, no role above it)."""
        with self.lock:
            now = self._sync()
            if key_digest(body.api_key) in self._by_key:
                raise Conflict("an account with this API key already exists")
            account_id = self.state.next_account_id
            self.state.next_account_id += 1
            username = body.username or f"user{account_id}"
            account = Account(id=account_id, username=username, email=body.email or f"{username}@example.com",
                              credit=body.balance, created_at=now)
            self.state.accounts[account_id] = account
            self.store_key(body.api_key, account_id=account_id, user_id=account_id, name="primary", key_type="api",
                           primary=True)
            self._touch()
            return UserView(account=account, balance=account.credit)

    def account(self, account_id: int) -> UserView:
        """Any account's balance (a team's too), as its own key would read it from `GET /users/current`."""
        with self.lock:
            self._sync()
            account = self.state.accounts.get(account_id)
            if account is None:
                raise NotFound(f"no account {account_id}")
            return UserView(account=account.model_copy(), balance=self._balance(account_id))

    def seed_team(self, body: TeamBody) -> Account:
        """A team made as its owner's `POST /api/v0/team/` would make it."""
        owner = self.state.accounts.get(body.owner_id)
        if owner is None or owner.kind != "user":
            raise NotFound(f"no user account {body.owner_id} to own the team")
        return self.found_team(owner, CreateTeamBody(team_name=body.team_name, transfer_credit=body.transfer_credit))

    def seed_team_key(self, team_id: int, body: TeamKeyBody) -> ApiKey:
        """A key in the team's context for one of its members: what the console makes after a context switch."""
        with self.lock:
            team = self.state.accounts.get(team_id)
            if team is None or team.kind != "team" or team.deleted_at is not None:
                raise NotFound(f"no team {team_id}")
            user_id = body.user_id if body.user_id is not None else team.owner_id
            if user_id is None or f"{team_id}:{user_id}" not in self.state.members:
                raise InvalidArgs(f"user {user_id} is not a member of team {team_id}: accept an invitation first")
            try:
                params = KeyParams.parse(body.key_params)
                permissions = None if body.permissions is None else \
                    parse_permissions(body.permissions).resolve(params.values)
            except InvalidPermissions as exc:
                raise InvalidPermissionsError(str(exc)) from None
            return self.store_key(body.api_key, account_id=team_id, user_id=user_id, name=body.name, key_type="team",
                                  permissions=permissions, key_params=params).model_copy()

    def invitations(self) -> list[Invitation]:
        with self.lock:
            return [i.model_copy() for i in self.state.invitations.values()]

    def accounts(self) -> list[UserView]:
        with self.lock:
            self._sync()
            return [UserView(account=a, balance=self._balance(a.id)) for a in self.state.accounts.values()]

    def set_balance(self, account_id: int, body: BalanceBody) -> UserView:
        with self.lock:
            self._sync()
            account = self.state.accounts.get(account_id)
            if account is None:
                raise InvalidArgs(f"no account {account_id}", status=404, code="not_found")
            if body.add is not None:
                account.credit += body.add
            elif body.balance is not None:
                account.credit += body.balance - self._balance(account_id)
            self._touch()
            return UserView(account=account, balance=self._balance(account_id))

    def clock_reading(self) -> ClockReading:
        return ClockReading(now=self.clock.now(), frozen=self.clock.frozen)

    def update_clock(self, body: ClockBody) -> float:
        with self.lock:
            self._sync()
            if body.set is not None:
                when = epoch_of(body.set)
                if when < self.clock.now() and self._live():
                    raise InvalidArgs("the clock cannot go back while instances exist (billing only moves "
                                      "forward); destroy them or reset first")
                self.clock.set(when)
                if when < self.state.billed_until:
                    self.state.billed_until = when
            if body.freeze is True:
                self.clock.freeze()
            elif body.freeze is False:
                self.clock.unfreeze()
            if body.advance:
                self.clock.advance(body.advance)
            now = self._sync()
            self._touch()
            return now

    def configure(self, body: ConfigBody) -> EmulatorConfig:
        with self.lock:
            self._sync()
            self.state.config = self.state.config.model_copy(update=body.model_dump(exclude_none=True))
            self._touch()
            return self.state.config.model_copy()

    def force_state(self, instance_id: int, body: ForceStateBody) -> Instance:
        """Put an instance into a state now, as a host failure or a stuck pull would."""
        with self.lock:
            now = self._sync()
            inst = self.state.instances.get(instance_id)
            if inst is None or inst.destroyed_at is not None:
                raise NoSuchInstance(instance_id)
            inst.transition_at = inst.transition_to = None
            inst.outbid_since = None  # a forced state is the host's doing, not the market's
            status = body.actual_status
            if status == "loading":
                inst.intended_status = "running"
                inst.fault = "stuck_loading" if body.stuck else None
                inst.ready_at = now + self.config.provision_delay
                self._loading(inst)
                if not body.stuck and self.config.provision_delay <= 0:
                    self._boot_done(inst, now)
            elif status == "running":
                inst.fault = None
                inst.intended_status, inst.actual_status = "running", "running"
                inst.status_msg, inst.running_since = f"success, running {inst.image}", now
            elif status == "stopped":
                self._stop(inst)
            else:
                inst.actual_status = status
                inst.status_msg = {"exited": "Error response from daemon: container exited with code 1",
                                   "offline": "Host offline", "unknown": "No heartbeat from host"}.get(status, status)
                inst.running_since = None
            if body.status_msg is not None:
                inst.status_msg = body.status_msg
            self._touch()
            return inst.model_copy()

    def set_gpu_util(self, instance_id: int, body: GpuUtilBody) -> tuple[Instance, float]:
        """The instance's GPU utilisation from now on, as a curve over virtual time (emulator.utilization)."""
        with self.lock:
            now = self._sync()
            inst = self.state.instances.get(instance_id)
            if inst is None or inst.destroyed_at is not None:
                raise NoSuchInstance(instance_id)
            inst.gpu_util = curve_of(body, now)
            self._touch()
            return inst.model_copy(), now

    def force_state_at(self, instance_id: int, body: ForceStateBody) -> tuple[Instance, float]:
        with self.lock:
            return self.force_state(instance_id, body), self.clock.now()

    def add_race(self, body: RaceBody) -> list[RaceRule]:
        with self.lock:
            self.state.races.append(RaceRule(offer_id=body.offer_id, mode=body.mode))
            self._touch()
            return [r.model_copy() for r in self.state.races]

    def races(self) -> list[RaceRule]:
        with self.lock:
            return [r.model_copy() for r in self.state.races]

    def clear_races(self) -> None:
        with self.lock:
            self.state.races.clear()
            self._touch()

    def dump(self) -> MarketState:
        with self.lock:
            self._sync()
            self.state.clock = self.clock.snapshot()
            return self.state.model_copy(deep=True)

    def state_dump(self) -> StateDump:
        with self.lock:
            state = self.dump()
            return StateDump(state=state, balances={a: self._balance(a) for a in state.accounts},
                             clock=self.clock_reading())

    # ---------------------------------------------------------------------- fault rules and request log

    def add_fault(self, body: FaultBody) -> FaultRule:
        try:
            return self.faults.add(body)
        except ValueError as exc:
            raise InvalidArgs(str(exc)) from None

    def fault_rules(self) -> list[FaultRule]:
        return self.faults.rules()

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_records(self, operation: str | None = None) -> tuple[list[RequestRecord], dict[str, int]]:
        """The request log (of one operation, or all) and the counts per operation of all of it."""
        return self.requests.records(operation), self.requests.counts()

    def clear_requests(self) -> None:
        self.requests.clear()


EARLIEST, LATEST = 946_684_800.0, 4_102_444_800.0  # 2000-01-01, 2100-01-01


def epoch_of(value: float | str) -> float:
    if isinstance(value, float | int):
        when = float(value)
    else:
        try:
            when = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidArgs(f"clock set must be epoch seconds or ISO-8601; got {value!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            when = parsed.timestamp()
    if not EARLIEST <= when <= LATEST:
        raise InvalidArgs("clock set must be between 2000-01-01 and 2100-01-01")
    return when

