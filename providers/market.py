"""What one provider process shares across its concurrent calls for one Vast account.

The engine calls `check` once per resource and then up to `--parallel` creates, reads and deletes at once, all
in one provider process. Done naively each call opens a client, searches the market and polls its own
instance, which costs N searches (Vast allows about ten a minute), N instance listings for adoption and a
status read per instance per poll. Here the process keeps:

- one `VastClient` per account (keep-alive connections, one pacer that learns Vast's rate limits);
- an `OfferBook`: one search per distinct query, from which quotes and rents draw *distinct* offers, so that N
  new instances of a group are quoted at the N cheapest offers (an honest estimate) and N concurrent creates
  do not all race for the cheapest one;
- an `InstanceBoard`: one listing of the account for adoption checks, and coalesced status reads: every
  caller waiting for an instance is served by one filtered listing taken after it asked.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vastclient import Instance, Offer, OfferQuery, VastClient

SEARCH_LIMIT = 64
MAX_SEARCH_LIMIT = 1024
LISTING_PAGE = 25  # the v1 instance listing's page: ids beyond it cost another call


def search_matching(client: VastClient, query: OfferQuery) -> list[Offer]:
    """The offers a search returns, cheapest first, each re-checked against the query: Vast may silently drop a
    filter."""
    return sorted((o for o in client.search_offers(query) if query.matches(o)), key=lambda o: o.dph_total)


@dataclass
class _Shelf:
    """The offers one query returned, cheapest first, and how many were asked for."""

    offers: list[Offer]
    limit: int
    fetched_at: float
    quoted: set[int] = field(default_factory=set)


class OfferBook:
    """Searches once per query and hands out distinct offers: quotes to `check`, claims to `create`."""

    def __init__(self, client: VastClient, *, ttl: float = 60.0, recheck_after: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl
        # When a shelf runs dry, look at the market again only if the last look is older than this: searches
        # are scarce, and a dozen creates finding no offer at once must not each spend one.
        self._recheck_after = recheck_after
        self._clock = clock
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self._shelves: dict[str, _Shelf] = {}
        self._claimed: set[int] = set()
        self._gone: set[int] = set()
        self._bad_machines: set[int] = set()

    @staticmethod
    def _key(query: OfferQuery) -> str:
        return query.model_copy(update={"limit": 0}).model_dump_json()

    def _search(self, query: OfferQuery, limit: int) -> list[Offer]:
        return search_matching(self._client, query.model_copy(update={"limit": limit}))

    def _shelf(self, query: OfferQuery, *, for_quote: bool = False, fresh: bool = False) -> _Shelf:
        """The shelf for query with an offer left (for a quote: one not quoted yet), searching (once for all
        concurrent callers) when it is missing, stale, or dry while the last search was truncated; `fresh`
        asks for a look at the market unless the last one is only seconds old."""
        key = self._key(query)
        with self._lock:
            gate = self._fetching.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                shelf = self._shelves.get(key)
                max_age = self._recheck_after if fresh else self._ttl
                if shelf is not None and self._clock() - shelf.fetched_at < max_age and (
                        self._available(shelf, for_quote=for_quote) or len(shelf.offers) < shelf.limit):
                    return shelf
                limit = SEARCH_LIMIT if shelf is None else shelf.limit
                if shelf is not None and len(shelf.offers) >= shelf.limit:
                    handed_out = len(shelf.quoted | self._claimed | self._gone)
                    limit = min(MAX_SEARCH_LIMIT, max(limit, (handed_out + 1) * 2))
            offers = self._search(query, limit)
            with self._lock:
                old = self._shelves.get(key)
                shelf = _Shelf(offers=offers, limit=limit, fetched_at=self._clock(),
                               quoted=set(old.quoted) if old else set())
                self._shelves[key] = shelf
                return shelf

    def _available(self, shelf: _Shelf, *, for_quote: bool = False) -> list[Offer]:
        taken = self._claimed | self._gone | (shelf.quoted if for_quote else set())
        return [o for o in shelf.offers if o.id not in taken and o.machine_id not in self._bad_machines]

    def quote(self, query: OfferQuery) -> tuple[Offer, int] | None:
        """The cheapest offer not yet quoted to another new instance of this query, and how many matched;
        None when the market has no (more) offer for it."""
        for fresh in (False, True):
            shelf = self._shelf(query, for_quote=True, fresh=fresh)
            with self._lock:
                free = self._available(shelf, for_quote=True)
                if free:
                    shelf.quoted.add(free[0].id)
                    return free[0], len(self._available(shelf))
            if len(shelf.offers) < shelf.limit:
                return None
        return None

    def claim(self, query: OfferQuery, *, prefer: int | None = None) -> tuple[Offer, int] | None:
        """Reserve an offer for one rent: the quoted one (`prefer`) if still free, else the cheapest free one.
        None when no offer is left even after a fresh search."""
        for fresh in (False, True):
            shelf = self._shelf(query, fresh=fresh)
            with self._lock:
                free = self._available(shelf)
                if free:
                    chosen = next((o for o in free if o.id == prefer), free[0])
                    self._claimed.add(chosen.id)
                    return chosen, len(free)
        return None

    def matched(self, query: OfferQuery) -> int:
        """How many offers the last search for query returned (0 when it was never searched)."""
        with self._lock:
            shelf = self._shelves.get(self._key(query))
            return len(shelf.offers) if shelf else 0

    def gone(self, offer_id: int) -> None:
        """Someone else rented it (or it vanished): never offer it again in this process."""
        with self._lock:
            self._claimed.discard(offer_id)
            self._gone.add(offer_id)

    def avoid_machine(self, machine_id: int | None) -> None:
        """An instance on this machine died while starting: do not rent there again in this process."""
        if machine_id is not None:
            with self._lock:
                self._bad_machines.add(machine_id)


class InstanceBoard:
    """The account's instances as seen by listings that concurrent callers share.

    `get_instance(id)` answers from a listing that started after the call did, so it is as fresh as a
    `show` of that instance; whoever finds no such listing in flight takes one for every instance that
    callers are waiting on (filtered by id), at most every `min_interval` seconds: a listing a second (Vast's
    limit) during a rollout paced at 4.5 rents a second would spend more calls on status than the rollout
    needs, and no Vast machine boots in less than a few seconds anyway. While rents still stream in, that
    listing also waits for its batch to settle (a page of ids, or no new id for `settle` seconds, or `max_wait`
    since it was asked for): the first listings of a rollout otherwise each covered the one or two instances
    rented so far, three quarters of an `up`'s status calls. `find_tagged(tag)` answers from one listing of the
    whole account per process."""

    def __init__(self, client: VastClient, *, min_interval: float = 2.0, settle: float = 0.6,
                 max_wait: float = 8.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._min_interval = min_interval
        self._settle = settle
        self._max_wait = max_wait
        self._joined_at = float("-inf")
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._wanted: dict[int, int] = {}
        self._seen: dict[int, Instance] = {}
        self._covered: frozenset[int] = frozenset()
        self._fetched_at: float | None = None
        self._fetch_server_time: float | None = None
        self._last_fetch = float("-inf")
        self._fetching = False
        self._local = threading.local()
        self._account: list[Instance] | None = None
        self._account_server_time: float | None = None
        self._account_lock = threading.Lock()

    @property
    def last_server_time(self) -> float | None:
        """Vast's clock when it sent the listing that answered this thread's last `get_instance`."""
        value: float | None = getattr(self._local, "server_time", None)
        return value

    def get_instance(self, instance_id: int) -> Instance | None:
        asked = self._clock()
        with self._cond:
            if instance_id not in self._wanted:
                self._joined_at = asked
            self._wanted[instance_id] = self._wanted.get(instance_id, 0) + 1
        try:
            while True:
                with self._cond:
                    while True:
                        fetched = self._fetched_at
                        if fetched is not None and fetched >= asked and instance_id in self._covered:
                            self._local.server_time = self._fetch_server_time
                            return self._seen.get(instance_id)
                        if not self._fetching:
                            self._fetching = True
                            break
                        self._cond.wait()
                self._fetch(asked)
        finally:
            with self._cond:
                left = self._wanted[instance_id] - 1
                if left:
                    self._wanted[instance_id] = left
                else:
                    del self._wanted[instance_id]

    def _settled(self, asked: float) -> bool:
        now = self._clock()
        with self._cond:
            return (len(self._wanted) >= LISTING_PAGE or now - self._joined_at >= self._settle
                    or now - asked >= self._max_wait)

    def _fetch(self, asked: float) -> None:
        try:
            wait = self._last_fetch + self._min_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
            while not self._settled(asked):
                self._sleep(self._settle / 4)
            with self._cond:
                batch = frozenset(self._wanted)
            started = self._clock()
            self._last_fetch = started
            rows = self._client.list_instances(ids=batch)
            server_time = self._client.last_server_time
            with self._cond:
                self._seen = {i.id: i for i in rows}
                self._covered = batch
                self._fetched_at = started
                self._fetch_server_time = server_time
        finally:
            with self._cond:
                self._fetching = False
                self._cond.notify_all()

    def find_tagged(self, tag: str, tag_of: Callable[[str | None], str | None]) -> list[Instance]:
        """The instances carrying ownership tag `tag` (one, normally), from one listing of the whole account per
        process.

        One listing suffices: an instance an earlier, interrupted process rented is on it (that process ended
        before this one started: the backend's lock keeps updates of a stack apart), and an instance this
        process rents is tracked by the create that rented it."""
        return [i for i in self.account_listing() if tag_of(i.label) == tag]

    def account_listing(self) -> list[Instance]:
        """The account's instances from the one whole-account listing this process takes (the adoption checks'
        and the spend reading's: a preview reads its team's spend from it, and an up adopts from it)."""
        with self._account_lock:
            if self._account is None:
                self._account = self._client.list_instances()
                self._account_server_time = self._client.last_server_time
            return list(self._account)

    @property
    def account_listed_at(self) -> float | None:
        """Vast's clock when that listing was taken."""
        return self._account_server_time


class Session:
    """One account's shared client, GPU names, offer book and instance board in this process."""

    def __init__(self, client: VastClient, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.book = OfferBook(client, clock=clock)
        self.board = InstanceBoard(client, clock=clock, sleep=sleep)
        self._gpu_names: list[str] | None = None
        self._lock = threading.Lock()

    def gpu_names(self) -> list[str]:
        with self._lock:
            if self._gpu_names is None:
                self._gpu_names = self.client.gpu_names()
            return self._gpu_names


_SESSIONS: dict[tuple[str, str], Session] = {}
_SESSIONS_LOCK = threading.Lock()


def session_for(base_url: str | None, api_key: str, *, make_client: Callable[[], VastClient]) -> Session:
    """The process's session for (base URL, key); the key is kept only as a digest in the registry."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    with _SESSIONS_LOCK:
        session = _SESSIONS.get((base_url or "", digest))
        if session is None:
            session = _SESSIONS[(base_url or "", digest)] = Session(make_client())
        return session
