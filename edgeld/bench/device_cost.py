"""What an image costs on a device: a user-edited devices table (price, power draw) applied to the
measured rows. Prices and power draws are the user's figures, never measurements; the report says
so beside every number derived from them. Energy measured on a Jetson (tegrastats) is used instead
of the table's power draw where a record carries it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeld.bench.report_rows import Row
from edgeld.core.errors import UserError

#: Hardware bought outright is written off over this many hours of back-to-back inference when
#: the table gives no `lifetime_h`: three years around the clock, a common depreciation period.
DEFAULT_LIFETIME_H = 3 * 365 * 24


@dataclass(frozen=True)
class Device:
    """One entry of the devices table; exactly one of `price` (bought) and `price_per_hour`
    (rented, electricity included in the rent) is set."""

    name: str
    power_w: float
    price: float | None = None
    price_per_hour: float | None = None
    lifetime_h: float = DEFAULT_LIFETIME_H
    match: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceTable:
    path: str
    devices: dict[str, Device]
    currency: str = "USD"
    electricity_per_kwh: float | None = None


def _number(entry: dict[str, Any], key: str, where: str, required: bool = False) -> float | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise UserError(f"{where}: {key} must be a positive number (got {value!r})")
    return float(value)


def _device(name: str, entry: Any, path: str) -> Device:
    where = f"{path}: device {name!r}"
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be an object with price (or price_per_hour) and power_w")
    price, hourly = _number(entry, "price", where), _number(entry, "price_per_hour", where)
    if (price is None) == (hourly is None):
        raise UserError(f"{where}: give exactly one of price (bought) and price_per_hour (rented)")
    match = entry.get("match", [name])
    match = [match] if isinstance(match, str) else match
    if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
        raise UserError(f"{where}: match must be a string or a list of strings")
    return Device(name=name, power_w=_number(entry, "power_w", where, required=True), price=price,
                  price_per_hour=hourly,
                  lifetime_h=_number(entry, "lifetime_h", where) or DEFAULT_LIFETIME_H,
                  match=tuple(match))


def _read(path: Path) -> Any:
    """The file's content: JSON, or YAML where the name says so and PyYAML is installed."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml  # optional: JSON needs nothing
        except ImportError:
            raise UserError(f"{path} is YAML, which needs PyYAML: pip install pyyaml, or write "
                            "the devices file as JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None


def load_devices(path: str | Path) -> DeviceTable:
    """Read and check a devices file (see benchmarks/devices.example.json)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"devices file not found: {path} (see benchmarks/devices.example.json)")
    data = _read(path)
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict) or not data["devices"]:
        raise UserError(f"{path}: expected an object whose \"devices\" maps names to "
                        "{price or price_per_hour, power_w}")
    currency = data.get("currency", "USD")
    if not isinstance(currency, str) or not currency:
        raise UserError(f"{path}: currency must be a name like USD or EUR")
    kwh = data.get("electricity_per_kwh")
    kwh = None if kwh is None else _number(data, "electricity_per_kwh", str(path))
    devices = {name: _device(name, entry, str(path)) for name, entry in data["devices"].items()}
    return DeviceTable(path=str(path), devices=devices, currency=currency, electricity_per_kwh=kwh)


def _names_in(record: dict[str, Any], row: Row) -> str:
    """Everything a record says about its hardware, for matching table entries against."""
    facts = record.get("device") or {}
    gpus = " ".join(g.get("name") or "" for g in facts.get("gpus") or [])
    module = (facts.get("jetson") or {}).get("module") or ""
    return " | ".join((row.device, facts.get("cpu") or "", gpus, module)).lower()


def assign(rows: list[Row], table: DeviceTable,
           device: str | None = None) -> list[tuple[Row, Device | None, str]]:
    """Each row with its table device and how it was found: `--device NAME` for every row when
    given, else the first entry (file order) whose `match` strings occur in the record's facts."""
    if device is not None and device not in table.devices:
        raise UserError(f"--device {device!r} is not in {table.path}; it names: "
                        + ", ".join(table.devices))
    out = []
    for row in rows:
        if device is not None:
            out.append((row, table.devices[device], "--device"))
            continue
        text = _names_in(row.first, row)
        hit = next((d for d in table.devices.values() if any(m.lower() in text for m in d.match)),
                   None)
        out.append((row, hit, f"matched {hit.match[0]!r}" if hit else "no match"))
    return out


def measured_energy_j(row: Row) -> float | None:
    """Energy per image from tegrastats where the record has it (above idle when known), in J."""
    power = row.first.get("power_end_to_end" if row.end_to_end else "power_model_only") or {}
    mj = power.get("energy_per_image_mj")
    return None if mj is None else mj / 1000.0


def row_cost(row: Row, device: Device, table: DeviceTable) -> dict[str, Any]:
    """images/s, images/s per unit of price, energy per image (J) and cost per 1,000 images.

    Bought hardware: its price spread over `lifetime_h` hours of images one after another at
    this row's speed, plus electricity where the table gives a price per kWh. Rented hardware:
    the hours 1,000 images take, at the rent (which includes the electricity)."""
    ips = row.images_per_s
    measured = measured_energy_j(row)
    energy_j = measured if measured is not None else device.power_w / ips
    seconds = 1000.0 / ips
    if device.price_per_hour is not None:
        per_price, per_1000 = ips / device.price_per_hour, device.price_per_hour * seconds / 3600.0
        energy_cost = None
    else:
        per_price = ips / device.price
        per_1000 = device.price * seconds / (device.lifetime_h * 3600.0)
        energy_cost = (None if table.electricity_per_kwh is None
                       else 1000.0 * energy_j / 3.6e6 * table.electricity_per_kwh)
        per_1000 += energy_cost or 0.0
    return {"images_per_s": ips, "images_per_s_per_price": per_price, "energy_j": energy_j,
            "energy_measured": measured is not None, "cost_per_1000": per_1000,
            "energy_cost_per_1000": energy_cost}
