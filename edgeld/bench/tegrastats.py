"""Parse NVIDIA Jetson ``tegrastats`` lines and turn them into power/energy figures.

One tegrastats line looks (on an Orin, JetPack 6) like::

    11-30-2025 13:26:01 RAM 2461/7620MB ... CPU [19%@729,...] GR3D_FREQ 0%@[305] ...
    cpu@46.531C ... tj@48.843C VDD_IN 5704mW/5704mW VDD_CPU_GPU_CV 831mW/831mW VDD_SOC 1624mW/1624mW

The format drifted across L4T releases, and this parser accepts all of these forms:

* power rails ``NAME cur/avg`` (L4T 32, values already mW) and ``NAME curmW/avgmW`` (L4T 35+);
  ``avg`` is the running mean since tegrastats started;
* temperatures ``CPU@45.5C`` (upper case, L4T 32) and ``cpu@45.5C`` / ``tj@...`` (L4T 36);
* CPU loads ``[x%@MHz,...,off]`` and the old ``[x%,y%]@MHz`` with one shared clock;
* GPU ``GR3D_FREQ x%``, ``x%@MHz`` or ``x%@[MHz,MHz]`` (one clock per GPC on Orin).

Which rail is the board/module input differs per family (see ``INPUT_RAILS`` and
``input_power_mw``). Rails are only readable by tegrastats as root on some images.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Rails that measure the whole module's input on their own, most preferred first:
#   VDD_IN    - Orin Nano / Orin NX (INA3221 ch.1: VDD_IN, VDD_CPU_GPU_CV, VDD_SOC), Xavier NX,
#               TX2; NVIDIA's power guides call it the module's total input power.
#   VIN       - a single total-input rail; prefer it if a release prints one (not seen in
#               the sample lines we have - kept because newer modules label total input so).
#   POM_5V_IN - Jetson Nano / TX1 (L4T 32 "power optimisation module" naming), 5 V module input.
INPUT_RAILS: tuple[str, ...] = ("VDD_IN", "VIN", "POM_5V_IN")

# AGX Xavier (GPU, CPU, SOC, CV, VDDRQ, SYS5V) and AGX Orin (VDD_GPU_SOC, VDD_CPU_CV,
# VIN_SYS_5V0, VDDQ_VDD2_1V8AO) have no single input rail: their INA3221 shunts sit on the
# *inputs* of the module's regulators (AGX Xavier design guide DG-09840, "Power Monitor"),
# so the module input is the sum of every monitored rail. "NC" channels are unconnected.
UNCONNECTED_RAILS = frozenset({"NC"})

# Thermal zones that are powered down (e.g. GPU, CV0..2 on an idle AGX Orin) read -256 C.
_DEAD_SENSOR_C = -256.0

_TIMESTAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D(?:_FREQ)? (\d+)%(?:@\[?([\d,]+)\]?)?")
# "@" must follow a name directly, which keeps "%@1479" (loads) out of the temperatures.
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
# The trailing look-ahead rejects "RAM 2461/7620MB" and "IRAM 0/252kB": the digits must end there.
_RAIL_PAIR = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?![\w/])")
_RAIL_SINGLE = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)mW(?![\w/])")


@dataclass
class TegraSample:
    """One tegrastats line. Loads are percent, clocks MHz, temperatures Celsius, power mW."""

    ram_used_mb: int
    ram_total_mb: int
    timestamp: str | None = None  # "MM-DD-YYYY HH:MM:SS" when tegrastats printed one
    cpu_load_pct: list[float | None] = field(default_factory=list)  # None = core off
    cpu_mhz: list[int | None] = field(default_factory=list)
    gpu_load_pct: float | None = None
    gpu_mhz: int | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
    rails_mw: dict[str, tuple[float, float]] = field(default_factory=dict)  # rail -> (current, average)


def _parse_cpus(body: str, shared_mhz: str | None) -> tuple[list[float | None], list[int | None]]:
    loads: list[float | None] = []
    clocks: list[int | None] = []
    for entry in (e.strip() for e in body.split(",")):
        if not entry or entry == "off":
            loads.append(None)
            clocks.append(None)
            continue
        pct, _, mhz = entry.partition("@")
        loads.append(float(pct.rstrip("%")))
        clocks.append(int(mhz) if mhz else (int(shared_mhz) if shared_mhz else None))
    return loads, clocks


def parse_line(line: str) -> TegraSample:
    """Parse one tegrastats line; raise ``ValueError`` if it is not one."""
    text = line.strip()
    ram = _RAM.search(text)
    if ram is None:
        # Every tegrastats release starts its line with "RAM used/totalMB".
        raise ValueError(f"not a tegrastats line (no 'RAM used/totalMB' field): {text[:80]!r}")
    sample = TegraSample(ram_used_mb=int(ram.group(1)), ram_total_mb=int(ram.group(2)))

    stamp = _TIMESTAMP.match(text)
    if stamp:
        sample.timestamp = stamp.group(1)
    cpu = _CPU.search(text)
    if cpu:
        sample.cpu_load_pct, sample.cpu_mhz = _parse_cpus(cpu.group(1), cpu.group(2))
    gpu = _GR3D.search(text)
    if gpu:
        sample.gpu_load_pct = float(gpu.group(1))
        clocks = [int(c) for c in (gpu.group(2) or "").split(",") if c]
        sample.gpu_mhz = max(clocks) if clocks else None
    for name, value in _TEMP.findall(text):
        if float(value) > _DEAD_SENSOR_C:
            sample.temperatures_c[name] = float(value)
    for name, current, average in _RAIL_PAIR.findall(text):
        sample.rails_mw[name] = (float(current), float(average))
    for name, current in _RAIL_SINGLE.findall(text):
        sample.rails_mw.setdefault(name, (float(current), float(current)))
    return sample


def input_rail(sample: TegraSample) -> str:
    """Name of the rail(s) ``input_power_mw`` uses: one of ``INPUT_RAILS`` or ``"sum(...)"``."""
    for name in INPUT_RAILS:
        if name in sample.rails_mw:
            return name
    rails = [r for r in sample.rails_mw if r not in UNCONNECTED_RAILS]
    if not rails:
        raise ValueError("tegrastats line has no power rails (run tegrastats as root on this image?)")
    return "sum(" + "+".join(rails) + ")"


def input_power_mw(sample: TegraSample, average: bool = False) -> float:
    """Module input power in mW: the first of ``INPUT_RAILS`` present, else the sum of all rails.

    ``average=True`` returns tegrastats' running mean instead of the instantaneous reading.
    """
    idx = 1 if average else 0
    rail = input_rail(sample)
    if rail in sample.rails_mw:
        return sample.rails_mw[rail][idx]
    return sum(v[idx] for r, v in sample.rails_mw.items() if r not in UNCONNECTED_RAILS)


def summarize_power(samples: Sequence[TegraSample], idle_mw: float | None,
                    images: int, seconds: float) -> dict:
    """Mean input power over a run, and energy per image in mJ (mW x s = mJ).

    With ``idle_mw`` the energy is the part above idle, ``(mean - idle) * seconds / images``;
    without it, the whole input power is charged to the images (``energy_basis`` says which).
    """
    if not samples:
        raise ValueError("no tegrastats samples to summarize")
    if images <= 0 or seconds <= 0:
        raise ValueError(f"images and seconds must be positive, got {images} and {seconds}")
    powers = [input_power_mw(s) for s in samples]
    mean = sum(powers) / len(powers)
    above = None if idle_mw is None else mean - idle_mw
    charged = mean if above is None else above
    max_temps: dict[str, float] = {}
    for s in samples:
        for name, c in s.temperatures_c.items():
            max_temps[name] = max(c, max_temps.get(name, c))
    return {
        "samples": len(samples),
        "input_rail": input_rail(samples[0]),
        "mean_input_mw": mean,
        "idle_mw": idle_mw,
        "mean_above_idle_mw": above,
        "energy_per_image_mj": charged * seconds / images,
        "energy_basis": "total" if above is None else "above_idle",
        "max_temperatures_c": max_temps,
    }


class TegrastatsSampler:
    """Run ``tegrastats --interval MS`` in the background and keep its lines.

    >>> with TegrastatsSampler(100) as sampler:   # doctest: +SKIP
    ...     run_benchmark()
    >>> summarize_power(sampler.samples(), idle_mw, images, seconds)   # doctest: +SKIP

    ``command`` replaces the tegrastats invocation (tests inject a fake that prints lines).
    """

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None):
        self.interval_ms = interval_ms
        self.command = list(command) if command is not None else None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> TegrastatsSampler:  # noqa: PYI034 (typing.Self needs 3.11; we support 3.10)
        command = self.command
        if command is None:
            exe = shutil.which("tegrastats")
            if exe is None:
                raise RuntimeError("tegrastats not found on PATH: power sampling needs an NVIDIA "
                                   "Jetson (L4T) board")
            command = [exe, "--interval", str(self.interval_ms)]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        return self

    def _read(self, stream: Iterable[str]) -> None:
        for line in stream:
            if line.strip():
                with self._lock:
                    self._lines.append(line.strip())

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:  # ignores SIGTERM: don't hang the benchmark
                proc.kill()
                proc.wait(timeout=2.0)
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def lines(self) -> list[str]:
        """Lines read so far (a copy; safe to call while sampling)."""
        with self._lock:
            return list(self._lines)

    def samples(self) -> list[TegraSample]:
        """Parsed samples, skipping anything tegrastats printed that is not a stats line."""
        out = []
        for line in self.lines:
            try:
                out.append(parse_line(line))
            except ValueError:
                continue
        return out


class PowerMonitor:
    """Power for benchmark records: an idle baseline first, then tegrastats sampled during each
    timed phase, summarized per image (``summarize_power``)."""

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None,
                 idle_seconds: float = 3.0):
        self.interval_ms, self.command, self.idle_seconds = interval_ms, command, idle_seconds
        self.idle_mw: float | None = None

    def sampler(self) -> TegrastatsSampler:
        return TegrastatsSampler(self.interval_ms, self.command)

    def measure_idle(self) -> float | None:
        """Mean input power while nothing runs (None when tegrastats printed no usable line)."""
        import time

        with self.sampler() as sampler:
            time.sleep(self.idle_seconds)
        powers = []
        for sample in sampler.samples():
            try:
                powers.append(input_power_mw(sample))
            except ValueError:
                continue
        self.idle_mw = sum(powers) / len(powers) if powers else None
        return self.idle_mw

    def summarize(self, sampler: TegrastatsSampler, images: int, seconds: float) -> dict | None:
        """The run's power figures, or None when no sample with an input rail was read."""
        samples = [s for s in sampler.samples() if s.rails_mw]
        if not samples:
            return None
        try:
            return summarize_power(samples, self.idle_mw, images, seconds)
        except ValueError:
            return None
