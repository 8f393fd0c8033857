"""GPU utilisation per instance, as a curve over virtual time: what Vast reports in an instance row as `gpu_util`
(a fraction, 0 to 1, only while the instance runs), so that an idle-GPU policy can be tested against a month
of virtual time without a workload.

A curve is a list of points (virtual time, utilisation); between points the utilisation is interpolated
linearly, before the first point and after the last it holds that point's value. An instance without a curve
reports 0.0 while running (a container that has only just booted does nothing), and `null` otherwise, as Vast
leaves the field empty for an instance that is not running. Set through the control plane:

    POST /_emulator/instances/{id}/gpu_util {"points": [{"at": "2026-11-02T09:00:00Z", "util": 0.9}, ...]}
    POST /_emulator/instances/{id}/gpu_util {"util": 0.05}          # from now on, constant
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from emulator.errors import InvalidArgs

Curve = list[tuple[float, float]]


class UtilPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: FiniteFloat | str = Field(description="epoch seconds or ISO-8601 (virtual time)")
    util: float = Field(ge=0, le=1, allow_inf_nan=False)


class GpuUtilBody(BaseModel):
    """Either `points` (a curve) or `util` (constant from the virtual now on); an empty `points` clears it."""

    model_config = ConfigDict(extra="forbid")

    points: list[UtilPoint] | None = Field(default=None, max_length=10_000)
    util: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one(self) -> GpuUtilBody:
        if (self.points is None) == (self.util is None):
            raise ValueError('give either "points" (a curve) or "util" (constant from now on)')
        return self


def _epoch(value: float | str) -> float:
    if isinstance(value, float | int):
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgs(f"gpu_util point at {value!r}: epoch seconds or ISO-8601") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def curve_of(body: GpuUtilBody, now: float) -> Curve:
    if body.util is not None:
        return [(now, body.util)]
    points = sorted((_epoch(p.at), p.util) for p in body.points or [])
    for (a, _), (b, _) in pairwise(points):
        if a == b:
            raise InvalidArgs(f"gpu_util: two points at the same time ({a}); give one")
    return points


def util_at(curve: Sequence[tuple[float, float]], t: float) -> float:
    """The curve's value at virtual time t (0.0 without a curve)."""
    if not curve:
        return 0.0
    if t <= curve[0][0]:
        return curve[0][1]
    for (t0, u0), (t1, u1) in pairwise(curve):
        if t < t1:
            return u0 + (u1 - u0) * (t - t0) / (t1 - t0)
        if t == t1:
            return u1
    return curve[-1][1]
