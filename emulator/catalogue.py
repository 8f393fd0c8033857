"""The seeded offer catalogue: a few hundred asks over the GPUs teams actually rent, at realistic prices.

Same seed, same catalogue (ids, machines, prices, hosts), so a test can name an offer and a benchmark is
repeatable. Nothing here depends on the clock: offer times (`start_date`, `end_date`, `duration`) are
derived when a row is served. Every GPU model is guaranteed a few verified, rentable, single-GPU offers
(the ones a default search finds), so a fleet asking for any of them can always be placed.

Prices are $/hour for the whole offer: a per-GPU price drawn from the model's range, times `num_gpus`.
Interruptible (`bid`) prices start at `min_bid`, 35-60% of on-demand, as on Vast.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

Verification = Literal["verified", "unverified", "deverified"]


class Offer(BaseModel):
    """One ask on the market: a machine's GPUs for rent. Static facts only; who rented it is market state."""

    model_config = ConfigDict(extra="forbid")

    id: int
    machine_id: int
    host_id: int
    gpu_name: str
    num_gpus: int
    gpu_ram: int  # MB per GPU, as on the wire
    gpu_mem_bw: float
    gpu_max_power: float
    gpu_max_temp: float
    compute_cap: int
    total_flops: float
    dlperf: float
    cpu_name: str
    cpu_cores: int
    cpu_cores_effective: float
    cpu_ghz: float
    cpu_ram: int  # MB
    disk_space: float  # GB available for an instance's disk
    disk_bw: float
    disk_name: str
    dph_base: Decimal  # $/h on demand, whole offer
    min_bid: Decimal  # $/h, whole offer
    storage_cost: Decimal  # $/GB/month
    inet_up: float
    inet_down: float
    inet_up_cost: Decimal  # $/GB
    inet_down_cost: Decimal
    reliability: float
    verification: Verification
    external: bool
    datacenter: bool
    rentable: bool
    static_ip: bool
    geolocation: str
    cuda_max_good: float
    driver_version: str
    pci_gen: float
    pcie_bw: float
    mobo_name: str
    direct_port_count: int
    ubuntu_version: str
    max_duration: float  # seconds the host offers the machine for
    public_ipaddr: str
    score: float


@dataclass(frozen=True)
class GpuModel:
    name: str
    ram_mb: int
    price: tuple[float, float]  # on-demand $/h per GPU
    dlperf: float  # per GPU
    tflops: float  # per GPU
    compute_cap: int
    mem_bw: float
    max_power: float
    weight: float
    datacenter: bool  # a data-centre card: more multi-GPU boxes, more verified hosts
    min_cuda: float = 12.2


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("RTX 3090", 24576, (0.12, 0.30), 22.0, 35.6, 860, 936.0, 350.0, 17, False),
    GpuModel("RTX 4090", 24564, (0.20, 0.60), 38.0, 82.6, 890, 1008.0, 450.0, 22, False),
    GpuModel("RTX 5090", 32607, (0.45, 0.90), 55.0, 104.8, 1200, 1792.0, 575.0, 7, False, 12.8),
    GpuModel("RTX A6000", 49140, (0.35, 0.70), 30.0, 38.7, 860, 768.0, 300.0, 6, True),
    GpuModel("A40", 46068, (0.35, 0.65), 28.0, 37.4, 860, 696.0, 300.0, 4, True),
    GpuModel("L40S", 46068, (0.60, 1.10), 48.0, 91.6, 890, 864.0, 350.0, 6, True),
    GpuModel("A100 PCIE", 81920, (0.90, 1.60), 60.0, 19.5, 800, 1935.0, 300.0, 7, True),
    GpuModel("A100 SXM4", 81920, (1.10, 2.00), 75.0, 19.5, 800, 2039.0, 400.0, 9, True),
    GpuModel("H100 PCIE", 81559, (1.80, 2.80), 110.0, 51.2, 900, 2039.0, 350.0, 5, True),
    GpuModel("H100 SXM", 81559, (2.20, 3.50), 140.0, 66.9, 900, 3352.0, 700.0, 9, True),
    # Vast's spelling is not all upper case; this one keeps name normalisation honest.
    GpuModel("Tesla V100", 32768, (0.10, 0.30), 20.0, 15.7, 700, 900.0, 300.0, 4, True),
)

GPU_BY_NAME = {m.name: m for m in GPU_MODELS}

# (place, weight); Vast's geolocation is "<region>, <country code>".
_PLACES: tuple[tuple[str, float], ...] = (
    ("Oregon, US", 8), ("California, US", 8), ("Texas, US", 7), ("Virginia, US", 6), ("Washington, US", 4),
    ("Illinois, US", 3), ("Quebec, CA", 4), ("Ontario, CA", 2), ("Bavaria, DE", 3), ("Hesse, DE", 3),
    ("North Holland, NL", 3), ("Stockholm County, SE", 3), ("Oslo, NO", 2), ("Uusimaa, FI", 2),
    ("Masovian, PL", 2), ("Prague, CZ", 2), ("Madrid, ES", 1), ("England, GB", 3), ("Tokyo, JP", 2),
    ("Taipei, TW", 2), ("Singapore, SG", 2), ("Hanoi, VN", 1), ("Guangdong, CN", 1), ("Seoul, KR", 1),
)

_DRIVERS: tuple[tuple[str, float], ...] = (
    ("535.183.01", 12.2), ("550.54.14", 12.4), ("560.35.03", 12.6), ("570.124.06", 12.8), ("575.57.08", 12.9),
)

_CPUS_CONSUMER = ("AMD Ryzen 9 7950X 16-Core Processor", "Intel Core i9-13900K", "AMD Ryzen 9 5950X 16-Core Processor",
                  "AMD Ryzen Threadripper PRO 5975WX 32-Cores")
_CPUS_DC = ("AMD EPYC 7543 32-Core Processor", "AMD EPYC 9654 96-Core Processor", "Intel Xeon Platinum 8480+",
            "AMD EPYC 7763 64-Core Processor", "Intel Xeon Gold 6338 CPU @ 2.00GHz")
_MOBOS = ("ROMED8-2T", "ProArt X670E-CREATOR WIFI", "H12DSG-O-CPU", "X13DEG-OAD", "WRX80 Creator", "MZ73-LM0")
_DISKS = ("Samsung SSD 990 PRO 2TB", "SAMSUNG MZQL23T8HCLS-00A07", "KINGSTON SNV2S2000G", "INTEL SSDPF2KX038TZ")

_COUNTS_CONSUMER = ((1, 45.0), (2, 25.0), (4, 20.0), (8, 10.0))
_COUNTS_DC = ((1, 30.0), (2, 15.0), (4, 20.0), (8, 35.0))

DEFAULT_OFFERS = 300
GUARANTEED_PER_MODEL = 3  # verified, rentable, on-market, 1-GPU offers every model gets

T = TypeVar("T")


def _money(value: float, places: int = 4) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def _weighted(rng: random.Random, choices: tuple[tuple[T, float], ...]) -> T:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices], k=1)[0]


@dataclass(frozen=True)
class _Host:
    id: int
    geolocation: str
    datacenter: bool
    ip: str


def _score(dlperf: float, dph_base: Decimal, reliability: float) -> float:
    """Vast ranks offers by a value score; ours is DL performance per dollar, discounted hard for flaky hosts."""
    return round(dlperf / float(dph_base) * reliability**4, 3)


def generate(seed: int, count: int = DEFAULT_OFFERS) -> list[Offer]:
    """`count` offers, a pure function of `seed`."""
    rng = random.Random(seed)
    n_hosts = max(1, count // 3)
    host_ids = rng.sample(range(1_000, 300_000), n_hosts)
    hosts = []
    for i, host_id in enumerate(host_ids):
        net = ("203.0.113", "198.51.100", "192.0.2")[i % 3]  # RFC 5737 documentation ranges: never real hosts
        hosts.append(_Host(host_id, _weighted(rng, _PLACES), rng.random() < 0.35, f"{net}.{1 + i % 254}"))
    base = 4_000_000 + rng.randrange(0, 1_000_000)
    offer_ids = [base + i * 7 + rng.randrange(0, 7) for i in range(count)]
    machine_ids = rng.sample(range(10_000, 90_000), count)

    guaranteed = [m for m in GPU_MODELS for _ in range(GUARANTEED_PER_MODEL)]
    weights = tuple((m, m.weight) for m in GPU_MODELS)
    offers: list[Offer] = []
    for i in range(count):
        model = guaranteed[i] if i < len(guaranteed) else _weighted(rng, weights)
        sure = i < len(guaranteed)
        host = hosts[rng.randrange(n_hosts)]
        datacenter = host.datacenter or (model.datacenter and rng.random() < 0.5)
        num_gpus = 1 if sure else _weighted(rng, _COUNTS_DC if model.datacenter else _COUNTS_CONSUMER)
        if sure:
            verification: Verification = "verified"
        else:
            roll = rng.random()
            verified_share = 0.85 if datacenter else 0.7
            verification = "verified" if roll < verified_share else (
                "unverified" if roll < verified_share + 0.22 else "deverified")
        lo, hi = model.price
        per_gpu = lo + (hi - lo) * rng.betavariate(2.0, 2.6)
        if verification != "verified":
            per_gpu *= 0.88  # unverified hosts undercut to attract renters
        multi_discount = {1: 1.0, 2: 0.99, 4: 0.97, 8: 0.95}[num_gpus]
        dph_base = _money(per_gpu * num_gpus * multi_discount)
        min_bid = _money(float(dph_base) * rng.uniform(0.35, 0.60))
        reliability = round(max(0.80, min(0.9999, 1.0 - rng.expovariate(1 / 0.018))), 4)
        if sure:
            reliability = round(rng.uniform(0.97, 0.9995), 4)
        drivers = [d for d in _DRIVERS if d[1] >= model.min_cuda]
        driver, cuda = drivers[rng.randrange(len(drivers))]
        cores_per_gpu = rng.choice((8, 12, 16, 24, 32) if datacenter else (4, 6, 8, 12, 16))
        cpu_cores = cores_per_gpu * num_gpus
        disk_space = round(rng.choice((120.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)) * rng.uniform(0.6, 1.0), 1)
        offers.append(Offer(
            id=offer_ids[i],
            machine_id=machine_ids[i],
            host_id=host.id,
            gpu_name=model.name,
            num_gpus=num_gpus,
            gpu_ram=model.ram_mb,
            gpu_mem_bw=model.mem_bw,
            gpu_max_power=model.max_power,
            gpu_max_temp=rng.choice((83.0, 85.0, 87.0, 90.0)),
            compute_cap=model.compute_cap,
            total_flops=round(model.tflops * num_gpus, 1),
            dlperf=round(model.dlperf * num_gpus * rng.uniform(0.85, 1.05), 2),
            cpu_name=rng.choice(_CPUS_DC if datacenter else _CPUS_CONSUMER),
            cpu_cores=cpu_cores,
            cpu_cores_effective=float(cpu_cores),
            cpu_ghz=round(rng.uniform(2.0, 4.5), 1),
            cpu_ram=int(rng.choice((32, 48, 64, 96, 128)) * num_gpus * 1024),
            disk_space=disk_space,
            disk_bw=round(rng.uniform(800.0, 6500.0), 1),
            disk_name=rng.choice(_DISKS),
            dph_base=dph_base,
            min_bid=min_bid,
            storage_cost=_money(rng.uniform(0.05, 0.30), 3),
            inet_up=round(rng.uniform(50.0, 3000.0), 1),
            inet_down=round(rng.uniform(100.0, 5000.0), 1),
            inet_up_cost=_money(rng.uniform(0.0, 0.02)),
            inet_down_cost=_money(rng.uniform(0.0, 0.02)),
            reliability=reliability,
            verification=verification,
            external=(not sure) and rng.random() < 0.08,
            datacenter=datacenter,
            rentable=sure or rng.random() > 0.05,
            static_ip=datacenter or rng.random() < 0.5,
            geolocation=host.geolocation,
            cuda_max_good=cuda,
            driver_version=driver,
            pci_gen=rng.choice((4.0, 5.0)) if model.compute_cap >= 890 else 4.0,
            pcie_bw=round(rng.uniform(11.0, 52.0), 1),
            mobo_name=rng.choice(_MOBOS),
            direct_port_count=rng.choice((0, 16, 64, 100, 500, 1000)),
            ubuntu_version=rng.choice(("20.04", "22.04", "24.04")),
            max_duration=round(rng.choice((7, 14, 30, 60, 90, 180)) * 86400 + rng.uniform(0, 86400), 1),
            public_ipaddr=host.ip,
            score=_score(model.dlperf * num_gpus, dph_base, reliability),
        ))
    return offers


def custom_offer(offer_id: int, machine_id: int, *, gpu_name: str, num_gpus: int = 1,
                 dph_base: Decimal | None = None, storage_cost: Decimal = Decimal("0.15"),
                 reliability: float = 0.99, verification: Verification = "verified",
                 geolocation: str = "Oregon, US", disk_space: float = 500.0, rentable: bool = True,
                 external: bool = False) -> Offer:
    """An offer with exactly the given terms (the control plane's `POST /_emulator/offers`), everything else
    filled in from the GPU model, so a test can place an offer at a precise price."""
    model = GPU_BY_NAME.get(gpu_name) or GpuModel(gpu_name, 24576, (0.3, 0.3), 30.0, 40.0, 860, 900.0, 350.0, 1, False)
    base = dph_base if dph_base is not None else _money(sum(model.price) / 2 * num_gpus)
    return Offer(
        id=offer_id, machine_id=machine_id, host_id=900_000 + machine_id % 1000, gpu_name=model.name,
        num_gpus=num_gpus, gpu_ram=model.ram_mb, gpu_mem_bw=model.mem_bw, gpu_max_power=model.max_power,
        gpu_max_temp=85.0, compute_cap=model.compute_cap, total_flops=round(model.tflops * num_gpus, 1),
        dlperf=round(model.dlperf * num_gpus, 2), cpu_name=_CPUS_DC[0], cpu_cores=16 * num_gpus,
        cpu_cores_effective=float(16 * num_gpus), cpu_ghz=3.0, cpu_ram=64 * 1024 * num_gpus,
        disk_space=disk_space, disk_bw=3000.0, disk_name=_DISKS[0], dph_base=base,
        min_bid=_money(float(base) * 0.5), storage_cost=storage_cost, inet_up=1000.0, inet_down=1000.0,
        inet_up_cost=Decimal("0.0050"), inet_down_cost=Decimal("0.0050"), reliability=reliability,
        verification=verification, external=external, datacenter=True, rentable=rentable, static_ip=True,
        geolocation=geolocation, cuda_max_good=12.8 if model.min_cuda >= 12.8 else 12.4,
        driver_version="570.124.06", pci_gen=4.0, pcie_bw=25.0, mobo_name=_MOBOS[0], direct_port_count=100,
        ubuntu_version="22.04", max_duration=30 * 86400.0, public_ipaddr="192.0.2.250",
        score=_score(model.dlperf * num_gpus, base, reliability) if base > 0 else 0.0,
    )
