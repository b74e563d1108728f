"""Facts about the machine a result came from: CPU, OS, libraries, GPU, Jetson."""
from __future__ import annotations

import importlib.metadata
import os
import platform
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


def jetson_release() -> str | None:
    """The L4T release line on a Jetson (from /etc/nv_tegra_release), else None."""
    path = Path("/etc/nv_tegra_release")
    try:
        return path.read_text().splitlines()[0].strip() if path.is_file() else None
    except (OSError, IndexError):
        return None


def device_facts(threads: int | None = None) -> dict[str, Any]:
    """Everything a reader needs to know where a number came from."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "gpus": nvidia_gpus(),
        "jetson": jetson_release(),
    }
