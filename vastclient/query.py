"""`OfferQuery`: what to search the marketplace for, and the exact filter JSON the official CLI sends.

Vast's search endpoint takes a flat JSON object (`{"gpu_name": {"eq": "RTX 4090"}, ...}`) that the
official CLI builds from a query string; it is poorly specified and silently drops filters it does not
like, so the safest wire format is the one the official CLI is known to produce. `to_filter()` produces
that object byte for byte (values as the CLI's parser leaves them: numbers as strings, GPU names with
spaces, its three defaults first), and `to_cli_args()` gives the equivalent `vastai search offers`
arguments, which is how a test proves the two agree and how a person reproduces a search by hand.

Vast also returns offers that do not match the filter (and fewer than exist), so `matches()` re-checks
each returned offer against the fields we filtered on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.gpus import normalize
from vastclient.models import Offer

__all__ = ["DEFAULT_STORAGE_GB", "OfferQuery", "OfferType", "wire_gpu_name"]

OfferType = Literal["on-demand", "bid", "reserved"]
Direction = Literal["asc", "desc"]

DEFAULT_STORAGE_GB = 5.0
"""The official CLI prices offers for 5 GB of disk unless told otherwise (`--storage`)."""


def wire_gpu_name(name: str) -> str:
    """`RTX_4090` -> `RTX 4090`: the CLI's own rule (underscores to spaces), keeping Vast's case
    (`Tesla V100` is not upper case), so that `gpus.normalize(wire) == gpus.normalize(name)`."""
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip()


def _wire_number(value: float) -> str:
    """How a number reads after the CLI's parser: the text a person types (`2`, `0.95`), as a string."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _names(value: Any) -> Any:
    if isinstance(value, str):
        return (value,)
    return value


class OfferQuery(BaseModel):
    """The constraints vastguard searches with. GPU names are the marketplace's own (either spelling);
    to search a family (`A100`), pass its members: `gpus.resolve("A100", client.gpu_names())`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_names: tuple[str, ...] = Field(default=(), description="one name -> eq, several -> in")
    num_gpus: int | None = Field(default=None, ge=1, description="GPUs per instance, exactly")
    max_dph: float | None = Field(default=None, gt=0, description="cap on dph_total, $/hour")
    min_reliability: float | None = Field(default=None, ge=0, le=1)
    verified_only: bool = True
    geolocation: tuple[str, ...] = Field(default=(), description="country codes, e.g. US; several -> in")
    disk_gb: float | None = Field(
        default=None, gt=0, description="disk to price for (allocated_storage) and to require (disk_space)"
    )
    order: tuple[tuple[str, Direction], ...] = (("score", "desc"),)
    limit: int | None = Field(default=None, ge=1)
    offer_type: OfferType = "on-demand"
    max_bid: float | None = Field(
        default=None, gt=0, description="a bid to place ($/h): only offers it wins now (min_bid at most this), "
        "and with max_dph, where it plus the disk's storage stays within max_dph")

    @field_validator("gpu_names", "geolocation", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _names(value)

    @field_validator("gpu_names")
    @classmethod
    def _gpu_spelling(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for name in value:
            wire = wire_gpu_name(name)
            if not wire:
                raise ValueError("empty GPU name")
            if wire not in out:
                out.append(wire)
        return tuple(out)

    @field_validator("geolocation")
    @classmethod
    def _geo_spelling(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(dict.fromkeys(code.strip() for code in value if code.strip()))
        if any(re.search(r"[\s,\[\]\"]", code) for code in out):
            raise ValueError("geolocation entries are country codes such as US or SE")
        return out

    @field_validator("offer_type", mode="before")
    @classmethod
    def _interruptible_is_bid(cls, value: Any) -> Any:
        # The CLI accepts `interruptible` and sends `bid`; Vast only knows `bid`.
        return "bid" if value == "interruptible" else value

    @property
    def storage_gb(self) -> float:
        return DEFAULT_STORAGE_GB if self.disk_gb is None else float(self.disk_gb)

    def to_filter(self) -> dict[str, Any]:
        """The body of `POST /api/v0/bundles/`, key for key and value for value as the official CLI
        builds it for `to_cli_args()`."""
        q: dict[str, Any] = {}
        if self.verified_only:
            q["verified"] = {"eq": True}
        q["external"] = {"eq": False}
        q["rentable"] = {"eq": True}
        if len(self.gpu_names) == 1:
            q["gpu_name"] = {"eq": self.gpu_names[0]}
        elif self.gpu_names:
            q["gpu_name"] = {"in": list(self.gpu_names)}
        if self.num_gpus is not None:
            q["num_gpus"] = {"eq": _wire_number(self.num_gpus)}
        if self.max_dph is not None:
            q["dph_total"] = {"lte": _wire_number(self.max_dph)}
        if self.max_bid is not None:
            q["min_bid"] = {"lte": _wire_number(self.max_bid)}
        if self.min_reliability is not None:
            q["reliability"] = {"gte": _wire_number(self.min_reliability)}
        if len(self.geolocation) == 1:
            q["geolocation"] = {"eq": self.geolocation[0]}
        elif self.geolocation:
            q["geolocation"] = {"in": list(self.geolocation)}
        if self.disk_gb is not None:
            q["disk_space"] = {"gte": _wire_number(self.disk_gb)}
        q["order"] = [[field, direction] for field, direction in self.order]
        q["type"] = self.offer_type
        if self.limit:
            q["limit"] = int(self.limit)
        q["allocated_storage"] = self.storage_gb
        return q

    def to_cli_args(self) -> list[str]:
        """`vastai search offers ...` arguments that make the official CLI send `to_filter()`."""
        terms: list[str] = []
        if not self.verified_only:
            terms.append("verified=any")
        if len(self.gpu_names) == 1:
            terms.append(f"gpu_name={self.gpu_names[0].replace(' ', '_')}")
        elif self.gpu_names:
            terms.append(f"gpu_name in [{','.join(n.replace(' ', '_') for n in self.gpu_names)}]")
        if self.num_gpus is not None:
            terms.append(f"num_gpus={_wire_number(self.num_gpus)}")
        if self.max_dph is not None:
            terms.append(f"dph_total<={_wire_number(self.max_dph)}")
        if self.max_bid is not None:
            terms.append(f"min_bid<={_wire_number(self.max_bid)}")
        if self.min_reliability is not None:
            terms.append(f"reliability>={_wire_number(self.min_reliability)}")
        if len(self.geolocation) == 1:
            terms.append(f"geolocation={self.geolocation[0]}")
        elif self.geolocation:
            terms.append(f"geolocation in [{','.join(self.geolocation)}]")
        if self.disk_gb is not None:
            terms.append(f"disk_space>={_wire_number(self.disk_gb)}")
        args = ["search", "offers", " ".join(terms)] if terms else ["search", "offers"]
        order = ",".join(f"{field}-" if direction == "desc" else field for field, direction in self.order)
        args += ["--type", self.offer_type, "--storage", repr(self.storage_gb), "-o", order]
        if self.limit:
            args += ["--limit", str(self.limit)]
        return args

    def matches(self, offer: Offer) -> bool:
        """Whether an offer Vast returned really satisfies the filters (Vast may drop filters silently)."""
        if self.gpu_names and normalize(offer.gpu_name) not in {normalize(n) for n in self.gpu_names}:
            return False
        if self.num_gpus is not None and offer.num_gpus != self.num_gpus:
            return False
        if self.max_dph is not None and offer.dph_total > self.max_dph:
            return False
        if self.max_bid is not None:
            if offer.min_bid is None or offer.min_bid > self.max_bid:
                return False
            if self.max_dph is not None and self.bid_total(offer) > self.max_dph:
                return False
        if self.min_reliability is not None and (offer.reliability is None or offer.reliability < self.min_reliability):
            return False
        if self.verified_only and offer.verification is not None and not offer.verified:
            return False
        if offer.rentable is False:
            return False
        if self.geolocation and not _in_countries(offer.geolocation, self.geolocation):
            return False
        return not (self.disk_gb is not None and offer.disk_space is not None and offer.disk_space < self.disk_gb)


    def bid_total(self, offer: Offer) -> float:
        """What an instance renting `offer` at `max_bid` pays per hour: the bid, and the offer's storage for the
        disk priced (a bid search's `dph_total` is the offer's min_bid plus that storage)."""
        if self.max_bid is None:
            return offer.dph_total
        if offer.storage_cost is not None:
            storage = offer.storage_cost * self.storage_gb / 720
        else:
            storage = offer.dph_total - (offer.dph_base if offer.dph_base is not None else offer.min_bid or 0.0)
        return self.max_bid + storage


def _in_countries(geolocation: str | None, codes: Sequence[str]) -> bool:
    """Offers say `Oregon, US` or just `US`; the filter names the country code."""
    if not geolocation:
        return False
    country = geolocation.rsplit(",", 1)[-1].strip().upper()
    return country in {code.upper() for code in codes}
