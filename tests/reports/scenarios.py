"""A month of three teams' operations, written as DIY-backend history (shared by several test modules)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.reports.conftest import utc
from tests.reports.synthetic import Rented, StackWriter, ci_environment

NOW = utc(2026, 12, 3, 12)
MONTH = "2026-11"
BOB = ci_environment(author="Bob Stone", author_email="bob@example.com", committer="Bob Stone",
                     committer_email="bob@example.com", commit="9f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6", build=None)


def november(root: Path, *, clock_fields: bool = True) -> dict[str, StackWriter]:
    """ml-research: rent 3, stop one, refresh, replace one, a failed update, delete one, destroy.
    ml-engineering: from October, an eval box started and stopped again, still rented.
    data-science: one notebook from the 25th, still rented. Wall clock == Vast clock here."""
    research = StackWriter(root, "ml-research", "ml-research", clock_fields=clock_fields)
    research.rent(Rented("pretrain-0", 3001, "H100 SXM", 2.95, disk_gb=200))
    research.rent(Rented("finetune-0", 3002, "A100 SXM4", 1.10, disk_gb=100))
    research.rent(Rented("finetune-1", 3003, "A100 PCIE", 0.95, disk_gb=100))
    research.record(start=utc(2026, 11, 2, 9), message="ml-research: first fleet",
                    environment=ci_environment(build="41"))
    research.set_state("finetune-1", "stopped")
    research.record(start=utc(2026, 11, 5, 18), message="park finetune-1", environment=BOB)
    research.record(start=utc(2026, 11, 9, 8), kind="refresh", refresh=True, environment=BOB)
    research.remove("finetune-0")
    research.rent(Rented("finetune-0", 3004, "A100 SXM4", 1.25, disk_gb=100))
    research.record(start=utc(2026, 11, 12, 10), message="finetune on SXM4 80GB",
                    environment=ci_environment(build="44", pull_request="17"))
    research.record(start=utc(2026, 11, 15, 12), result="failed", message="add eval box",
                    environment=ci_environment(build="45"))
    research.remove("finetune-1")
    research.record(start=utc(2026, 11, 20, 17, 30), message="drop finetune-1", environment=ci_environment(build="47"))
    for name in list(research.instances):
        research.remove(name)
    research.record(start=utc(2026, 11, 28, 20), end=utc(2026, 11, 28, 20, 2), kind="destroy", environment=BOB)

    engineering = StackWriter(root, "ml-engineering", "ml-engineering", clock_fields=clock_fields)
    engineering.rent(Rented("inference-0", 2001, "RTX 4090", 0.42, disk_gb=64))
    engineering.rent(Rented("inference-1", 2002, "RTX 4090", 0.40, disk_gb=64))
    engineering.rent(Rented("eval-0", 2003, "A100 PCIE", 1.05, disk_gb=64, state="stopped"))
    engineering.record(start=utc(2026, 10, 30, 12), message="serving fleet", environment=ci_environment(build="30"))
    engineering.set_state("eval-0", "running")
    engineering.record(start=utc(2026, 11, 10, 9), message="run eval", environment=ci_environment(build="43"))
    engineering.set_state("eval-0", "stopped")
    engineering.record(start=utc(2026, 11, 10, 21), end=utc(2026, 11, 10, 21) + timedelta(seconds=25),
                       message="park eval", environment=ci_environment(build="46"))

    science = StackWriter(root, "data-science", "data-science", clock_fields=clock_fields, compress=True)
    science.rent(Rented("notebook-0", 1001, "RTX 3090", 0.21, disk_gb=32))
    science.record(start=utc(2026, 11, 25, 14), message="notebook", environment=ci_environment(build="48"))
    return {"ml-research": research, "ml-engineering": engineering, "data-science": science}
