"""Wire rows: how offers, instances, charges and the user look in Vast's JSON. Pure functions of state and
the virtual clock's now; the backend filters and sorts on these same rows, so a filter sees exactly the
values a client reads.

Shapes the official CLI depends on (it crashes or misprints otherwise): numbers are JSON numbers (it
formats `cuda_max_good`, `dph_total`, `reliability` with `{:0.1f}`-style specs), an instance's
`start_date` is numeric and `extra_env` is a list of `[key, value]` pairs, and every charge item has
`start`, `end`, `amount`, `source` and `items`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from emulator import billing
from emulator.utilization import util_at

if TYPE_CHECKING:
    from emulator.results import ChargeLine, OfferQuote, UserView
    from emulator.state import Account, ApiKey, AuditEntry, Instance, Role
    from fleet.permissions import PermissionSet

SSH_HOST = "ssh5.vast.ai"


def offer_row(quote: OfferQuote, now: float) -> dict[str, Any]:
    o = quote.offer
    base = quote.dph_base
    storage = quote.storage_per_hour
    total = quote.dph_total
    total_f = float(total)
    return {
        "id": o.id,
        "ask_contract_id": o.id,
        "bundle_id": o.id,
        "bundled_results": 1,
        "machine_id": o.machine_id,
        "host_id": o.host_id,
        "hosting_type": 1 if o.datacenter else 0,
        "datacenter": o.datacenter,
        "gpu_name": o.gpu_name,
        "gpu_arch": "nvidia",
        "num_gpus": o.num_gpus,
        "gpu_frac": 1.0,
        "gpu_ram": o.gpu_ram,
        "gpu_total_ram": o.gpu_ram * o.num_gpus,
        "gpu_mem_bw": o.gpu_mem_bw,
        "gpu_max_power": o.gpu_max_power,
        "gpu_max_temp": o.gpu_max_temp,
        "gpu_display_active": False,
        "compute_cap": o.compute_cap,
        "total_flops": o.total_flops,
        "dlperf": o.dlperf,
        "dlperf_per_dphtotal": round(o.dlperf / total_f, 4) if total_f > 0 else 0.0,
        "flops_per_dphtotal": round(o.total_flops / total_f, 4) if total_f > 0 else 0.0,
        "cpu_name": o.cpu_name,
        "cpu_arch": "amd64",
        "cpu_cores": o.cpu_cores,
        "cpu_cores_effective": o.cpu_cores_effective,
        "cpu_ghz": o.cpu_ghz,
        "cpu_ram": o.cpu_ram,
        "has_avx": True,
        "disk_space": o.disk_space,
        "disk_bw": o.disk_bw,
        "disk_name": o.disk_name,
        "dph_base": float(base),
        "dph_total": total_f,
        "discounted_dph_total": total_f,
        "min_bid": float(quote.min_bid if quote.min_bid is not None else o.min_bid),
        "is_bid": quote.is_bid,
        "storage_cost": float(o.storage_cost),
        "storage_total_cost": float(storage),
        "inet_up": o.inet_up,
        "inet_down": o.inet_down,
        "inet_up_cost": float(o.inet_up_cost),
        "inet_down_cost": float(o.inet_down_cost),
        "reliability": o.reliability,
        "reliability2": o.reliability,
        "rentable": o.rentable,
        "rented": False,  # "rented by you": what you rent leaves the market, so a listed offer never is
        "verification": o.verification,
        "verified": o.verification == "verified",
        "external": o.external,
        "static_ip": o.static_ip,
        "vms_enabled": False,
        "geolocation": o.geolocation,
        "cuda_max_good": o.cuda_max_good,
        "driver_version": o.driver_version,
        "pci_gen": o.pci_gen,
        "pcie_bw": o.pcie_bw,
        "mobo_name": o.mobo_name,
        "direct_port_count": o.direct_port_count,
        "ubuntu_version": o.ubuntu_version,
        "public_ipaddr": o.public_ipaddr,
        "score": o.score,
        "start_date": quote.listed_since,
        "end_date": now + o.max_duration,
        "duration": o.max_duration,
        "search": {"gpuCostPerHour": float(base), "diskHour": float(storage), "totalHour": total_f,
                   "discountTotalHour": 0.0, "discountedTotalPerHour": total_f},
    }


def _cur_state(inst: Instance) -> str:
    return "running" if inst.actual_status in ("created", "loading", "running", "rebooting") else "stopped"


def instance_row(inst: Instance, now: float) -> dict[str, Any]:
    o = inst.offer
    running = inst.actual_status == "running"
    return {
        "id": inst.id,
        "machine_id": o.machine_id,
        "host_id": o.host_id,
        "bundle_id": o.id,
        "actual_status": inst.actual_status,
        # Outbid, Vast shows current, intended and next state all `stopped` (dstack's Vast backend relies on
        # exactly that, pull request 4037); the emulator remembers that the owner wants it back.
        "intended_status": "stopped" if inst.outbid_since is not None else inst.intended_status,
        "cur_state": _cur_state(inst),
        "next_state": "stopped" if inst.outbid_since is not None else inst.intended_status,
        "status_msg": inst.status_msg,
        "label": inst.label,
        "image_uuid": inst.image,
        "image_runtype": inst.runtype,
        "image_args": [],
        "onstart": inst.onstart,
        "extra_env": [[k, v] for k, v in inst.extra_env],
        "template_hash_id": inst.template_hash_id,
        "template_id": None,
        "template_name": None,
        "gpu_name": o.gpu_name,
        "num_gpus": o.num_gpus,
        "gpu_ram": o.gpu_ram,
        "gpu_totalram": o.gpu_ram * o.num_gpus,
        "gpu_util": round(util_at(inst.gpu_util, now), 4) if running else None,
        "gpu_temp": 40.0 if running else None,
        "gpu_arch": "nvidia",
        "compute_cap": o.compute_cap,
        "cpu_name": o.cpu_name,
        "cpu_cores": o.cpu_cores,
        "cpu_cores_effective": o.cpu_cores_effective,
        "cpu_ram": o.cpu_ram,
        "cpu_util": 0.0 if running else None,
        "disk_space": float(inst.disk),
        "disk_usage": None,
        "disk_util": None,
        "disk_name": o.disk_name,
        "disk_bw": o.disk_bw,
        "dph_base": float(inst.dph_base),
        "dph_total": float(inst.dph_total),
        "storage_cost": float(o.storage_cost),
        "storage_total_cost": float(inst.storage_per_hour),
        "inet_up": o.inet_up,
        "inet_down": o.inet_down,
        "inet_up_cost": float(o.inet_up_cost),
        "inet_down_cost": float(o.inet_down_cost),
        "inet_up_billed": 0.0,
        "inet_down_billed": 0.0,
        "is_bid": inst.is_bid,
        "min_bid": float(o.min_bid),
        "start_date": inst.created_at,
        "end_date": inst.created_at + o.max_duration,
        "duration": now - inst.created_at,
        "uptime_mins": round((now - inst.running_since) / 60, 2) if inst.running_since is not None else None,
        "ssh_host": SSH_HOST,
        "ssh_port": inst.ssh_port,
        "ssh_idx": "5",
        "public_ipaddr": o.public_ipaddr,
        "reliability2": o.reliability,
        "verification": o.verification,
        "geolocation": o.geolocation,
        "cuda_max_good": o.cuda_max_good,
        "driver_version": o.driver_version,
        "volume_info": [],
    }


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def charge_row(line: ChargeLine) -> dict[str, Any]:
    d, inst = line.day, line.instance
    o = inst.offer
    gpu = billing.gpu_accrued(d.priced_running, d.running_seconds, inst.dph_base)
    # One rate all day is its own rate; a bid changed during the day shows the day's mean rate.
    rates = {billing.dec(r) for r in d.priced_running} or {inst.dph_base}
    gpu_rate = next(iter(rates)) if len(rates) == 1 or not d.running_seconds else (
        gpu * billing.SECONDS_PER_HOUR / d.running_seconds)
    disk = billing.accrued(inst.storage_per_hour, d.alive_seconds)
    running_h = d.running_seconds / billing.SECONDS_PER_HOUR
    alive_h = d.alive_seconds / billing.SECONDS_PER_HOUR

    def item(kind: str, description: str, amount: float, quantity: float, rate: float) -> dict[str, Any]:
        return {"type": kind, "source": None, "description": description, "amount": amount, "start": d.first,
                "end": d.last, "quantity": quantity, "rate": rate, "items": []}

    return {
        "day": d.day,
        "start": d.first,
        "end": d.last,
        "type": "instance",
        "source": f"instance-{inst.id}",
        "description": f"Instance {inst.id}: {o.num_gpus}x {o.gpu_name} on machine {o.machine_id} ({_date(d.day)})",
        "amount": billing.wire(gpu + disk),
        "metadata": {"label": inst.label, "template_id": None, "instance_id": inst.id,
                     "machine_id": o.machine_id, "day": _date(d.day)},
        "items": [
            item("gpu", f"GPU: {o.num_gpus}x {o.gpu_name} at ${gpu_rate:f}/h for {running_h:.6f} h",
                 billing.wire(gpu), float(running_h), float(gpu_rate)),
            item("disk", f"Storage: {inst.disk} GB at ${o.storage_cost}/GB/month for {alive_h:.6f} h",
                 billing.wire(disk), float(alive_h), float(inst.storage_per_hour)),
            item("bwu", "Upload bandwidth", 0.0, 0.0, float(o.inet_up_cost)),
            item("bwd", "Download bandwidth", 0.0, 0.0, float(o.inet_down_cost)),
        ],
    }


def user_row(view: UserView, *, key_id: int | None = None) -> dict[str, Any]:
    """Vast's user record also carries `api_key`; the emulator never echoes a key, here or anywhere.
    `balance` and `credit` are both the prepaid funds left (the emulator has no post-paid invoicing).
    `key_id` is the calling key's (Vast's "Active API key ID"); a team key reads the team's record."""
    a = view.account
    money = billing.wire(billing.round6(view.balance))
    return {
        "id": a.id,
        "key_id": key_id,
        "username": a.username,
        "email": a.email,
        "fullname": a.username,
        "balance": money,
        "credit": money,
        "balance_threshold": 0.0,
        "balance_threshold_enabled": False,
        "billed_expected": 0.0,
        "billed_verified": 0.0,
        "billing_creditonly": True,
        "can_pay": True,
        "email_verified": True,
        "got_signup_credit": False,
        "has_billing": True,
        "has_payout": False,
        "host_agreement_accepted": False,
        "paid_expected": 0.0,
        "paid_verified": 0.0,
        "ssh_key": None,
        "user": a.username,
        "created_at": a.created_at,
    }


def permissions_json(permissions: PermissionSet | None) -> dict[str, Any] | bool:
    """A key's permissions on the wire: the document, or `false` for a key without one of its own (Vast's
    "False when permissions are disabled": everything its holder may do)."""
    return False if permissions is None else permissions.to_wire()


def api_key_row(key: ApiKey, context: Account) -> dict[str, Any]:
    """A key as `GET /api/v0/auth/apikeys/` lists it: never the key itself (Vast sends `"key": null`)."""
    team = context.kind == "team"
    return {
        "id": key.id,
        "user_id": key.user_id,
        "key": None,
        "key_type": key.key_type,
        "name": key.name,
        "primary": key.primary,
        "team_id": context.id if team else None,
        "team_name": context.username if team else None,
        "team_owner": context.owner_id if team else None,
        "permissions": permissions_json(key.permissions),
        "key_params": key.key_params.to_wire(),
        "created_at": key.created_at,
    }


def role_row(role: Role) -> dict[str, Any]:
    return {"id": role.id, "name": role.name, "permissions": role.permissions.to_wire(),
            "identifier": role.identifier}


def member_row(account: Account, role: Role) -> dict[str, Any]:
    return {"id": account.id, "username": account.username, "email": account.email, "fullname": account.username,
            "roles": [role.name]}


def audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "user_id": entry.user_id, "api_key_id": entry.api_key_id,
            "ip_address": entry.ip_address, "api_route": entry.api_route, "args": entry.args,
            "created_at": entry.created_at}
