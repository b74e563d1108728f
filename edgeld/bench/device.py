"""Facts about the machine a result came from (CPU, OS, libraries, GPU, Jetson), and `edgeld
doctor`'s report of which backends it can run."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

LIBRARIES = ("numpy", "onnx", "onnxruntime", "torch", "tensorrt", "cuda-python", "pycuda", "pydicom")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def nvidia_gpus() -> list[dict[str, str]]:
    """GPUs reported by nvidia-smi (name, driver, memory), or [] where there is none."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(dict(zip(("name", "driver", "memory", "compute_capability"), parts)))
    return gpus


def jetson_release(root: Path = Path("/")) -> str | None:
    """The L4T release line on a Jetson (from /etc/nv_tegra_release), else None."""
    path = root / "etc/nv_tegra_release"
    try:
        return path.read_text().splitlines()[0].strip() if path.is_file() else None
    except (OSError, IndexError):
        return None


_CLOCK_LINE = re.compile(r"^(cpu\d+|GPU|EMC):?\s.*?MinFreq=(\d+) MaxFreq=(\d+) CurrentFreq=(\d+)")


def parse_jetson_clocks(text: str) -> dict[str, Any]:
    """`jetson_clocks --show` output -> whether clocks are locked at their maximum.

    jetson_clocks pins each CPU core's and the GPU's MinFreq to its MaxFreq; with the default
    dynamic scaling MinFreq stays below MaxFreq. `locked` is None when no clock line was found.
    """
    machine = re.search(r"Machine:\s*(.+)", text)
    clocks = {}
    for line in text.splitlines():
        m = _CLOCK_LINE.match(line.strip())
        if m and "Online=0" not in line:
            clocks[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    scaled = [name for name in clocks if name != "EMC"]  # EMC's MinFreq stays low even when locked
    locked = all(clocks[n][0] == clocks[n][1] for n in scaled) if scaled else None
    return {"locked": locked, "machine": machine.group(1).strip() if machine else None,
            "clocks_hz_or_khz": {n: {"min": c[0], "max": c[1], "current": c[2]} for n, c in clocks.items()}}


def parse_nvpmodel(text: str) -> dict[str, Any]:
    """`nvpmodel -q` output ("NV Power Mode: MAXN" then the mode id) -> {"mode", "id"}."""
    mode = re.search(r"NV Power Mode:\s*(\S+)", text)
    ident = re.search(r"NV Power Mode:\s*\S+\s*\n\s*(\d+)", text)
    return {"mode": mode.group(1) if mode else None, "id": int(ident.group(1)) if ident else None}


def _command_output(*command: str) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def jetson_facts(root: Path = Path("/")) -> dict[str, Any] | None:
    """Module, L4T, JetPack, power mode and clock state on a Jetson; None elsewhere.

    nvpmodel and jetson_clocks may need root; what cannot be read is None, not a guess.
    """
    release = jetson_release(root)
    if release is None:
        return None
    try:
        module = (root / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode().strip()
    except OSError:
        module = None
    l4t = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", release)
    jetpack = _command_output("dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack")
    nvpmodel = _command_output("nvpmodel", "-q")
    clocks = _command_output("jetson_clocks", "--show")
    return {
        "module": module,
        "l4t": f"{l4t.group(1)}.{l4t.group(2)}" if l4t else release,
        "jetpack": jetpack.strip() or None if jetpack else None,
        "nvpmodel": parse_nvpmodel(nvpmodel) if nvpmodel else None,
        "jetson_clocks": parse_jetson_clocks(clocks)["locked"] if clocks else None,
    }


def pin_cpus(spec: str) -> list[int]:
    """Restrict this process (and the runtime threads it starts from now on) to the CPUs of a
    list such as "1", "0,1" or "0-3", so that timings do not wander between cores; returns them.
    A UserError for a CPU this process may not use, or where the OS cannot pin (Linux only)."""
    from edgeld.core.errors import UserError

    if not hasattr(os, "sched_setaffinity"):
        raise UserError("--cpus needs Linux (sched_setaffinity); leave it out on this OS")
    try:
        wanted: set[int] = set()
        for part in spec.split(","):
            low, _, high = part.strip().partition("-")
            wanted |= set(range(int(low), int(high or low) + 1))
    except ValueError:
        raise UserError(f"--cpus {spec!r}: give CPU numbers like 1, 0,1 or 0-3") from None
    allowed = os.sched_getaffinity(0)
    if not wanted or not wanted <= allowed:
        raise UserError(f"--cpus {spec}: this process may use CPUs {_ranges(sorted(allowed))} only")
    os.sched_setaffinity(0, wanted)
    return sorted(wanted)


def _ranges(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def device_facts(threads: int | None = None) -> dict[str, Any]:
    """Everything a reader needs to know where a number came from."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        # the CPUs the timed process ran on (all of them unless `--cpus` pinned it)
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "gpus": nvidia_gpus(),
        "jetson": jetson_facts(),
    }


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def backend_report() -> list[str]:
    """Human-readable lines: each backend, whether it is usable here, and how to get it if not."""
    versions = library_versions()
    lines = [f"CPU: {cpu_model()}"]
    import onnxruntime as ort

    lines.append(f"ONNX Runtime {ort.__version__}: providers {', '.join(ort.get_available_providers())}")
    if _installed("torch"):
        import torch

        cuda = torch.cuda.is_available()
        lines.append(f"torch {torch.__version__}: CUDA {'available' if cuda else 'not available'}")
    else:
        lines.append("torch: missing (training, export and the torch backend): pip install 'edgeld[torch]'")
    gpus = nvidia_gpus()
    lines.append("NVIDIA GPU: " + ("; ".join(f"{g['name']} (driver {g['driver']}, "
                                             f"compute {g['compute_capability']})" for g in gpus)
                                   if gpus else "none found (no nvidia-smi or no device)"))
    jetson = jetson_release()
    lines.append(f"Jetson: {jetson}" if jetson else "Jetson: not a Jetson (no /etc/nv_tegra_release)")
    lines.append(f"TensorRT: {versions['tensorrt']}" if _installed("tensorrt")
                 else "TensorRT: missing (engines): pip install 'edgeld[trt]' on a machine with an NVIDIA GPU")
    lines.append("cuda-python: " + (versions["cuda-python"] or "installed") if _installed("cuda")
                 else "cuda-python: missing (TensorRT buffers): pip install 'edgeld[trt]'")
    lines.append("pydicom: " + (versions["pydicom"] or "installed") if _installed("pydicom")
                 else "pydicom: missing (DICOM input): pip install 'edgeld[dicom]'")
    return lines
