"""Jetson facts and power in benchmark records.

No Jetson here: the parsers are tested on real `jetson_clocks --show` / `nvpmodel -q` output from
public posts, and the benchmark's power path on a fake `tegrastats` executable that prints real
tegrastats lines (a stand-in for the absent hardware, as the test says).
"""
from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from edgeld.bench.device import jetson_facts, parse_jetson_clocks, parse_nvpmodel
from tests.test_cli import run
from tests.test_tegrastats import ORIN_NX_8GB

# Jetson Nano, default (dynamic) clocks, from a public blog post (qiita, nvpmodel/jetson_clocks notes)
NANO_DEFAULT = "\n".join([  # jetson_clocks ends cpu lines with a space: kept
    'SOC family:tegra210  Machine:NVIDIA Jetson Nano Developer Kit',
    'Online CPUs: 0-3',
    'CPU Cluster Switching: Disabled',
    'cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1479000 CurrentFreq=1326000 IdleStates: WFI=1 c7=1 ',
    'cpu1: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1479000 CurrentFreq=1479000 IdleStates: WFI=1 c7=1 ',
    'GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=76800000',
    'EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0',
    '',
])
# Orin Nano Super after `sudo jetson_clocks`, from a public write-up of a locked MAXN_SUPER setup
ORIN_NANO_LOCKED = """cpu0:  Online=1 Governor=schedutil MinFreq=1728000 MaxFreq=1728000 CurrentFreq=1728000 IdleStates: WFI=0 c7=0
GPU MinFreq=1020000000 MaxFreq=1020000000 CurrentFreq=1020000000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
FAN Dynamic Speed Control=disabled hwmon0_pwm1=255
NV Power Mode: MAXN_SUPER
"""


def test_jetson_clocks_default_is_not_locked():
    parsed = parse_jetson_clocks(NANO_DEFAULT)
    assert parsed["locked"] is False
    assert parsed["machine"] == "NVIDIA Jetson Nano Developer Kit"
    assert parsed["clocks_hz_or_khz"]["GPU"] == {"min": 76800000, "max": 921600000, "current": 76800000}


def test_jetson_clocks_locked_ignores_emc_min():
    assert parse_jetson_clocks(ORIN_NANO_LOCKED)["locked"] is True


def test_jetson_clocks_without_clock_lines_is_unknown():
    assert parse_jetson_clocks("permission denied")["locked"] is None


def test_nvpmodel_query():
    assert parse_nvpmodel("NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN\n0\n") == {"mode": "MAXN", "id": 0}
    assert parse_nvpmodel("NV Power Mode: 15W\n2") == {"mode": "15W", "id": 2}
    assert parse_nvpmodel("nothing") == {"mode": None, "id": None}


def test_jetson_facts_from_a_device_tree(tmp_path, monkeypatch):
    assert jetson_facts(tmp_path) is None  # no /etc/nv_tegra_release: not a Jetson
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text(
        "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
        "DATE: Tue Aug  1 19:57:35 UTC 2023\n")
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\0")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no nvpmodel / jetson_clocks / dpkg-query
    facts = jetson_facts(tmp_path)
    assert facts == {"module": "NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "l4t": "35.4.1",
                     "jetpack": None, "nvpmodel": None, "jetson_clocks": None}


@pytest.fixture
def fake_tegrastats(tmp_path, monkeypatch):
    """A `tegrastats` on PATH that prints a real Orin NX line every 20 ms until terminated."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "tegrastats"
    exe.write_text(f"#!{sys.executable}\nimport time\nwhile True:\n"
                   f"    print({ORIN_NX_8GB!r}, flush=True)\n    time.sleep(0.02)\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return exe


def test_benchmark_power_on_records_energy(tiny_onnx, tmp_path, fake_tegrastats):
    res = run("benchmark", tiny_onnx, "--seconds", 0.3, "--min-runs", 5, "--power", "on",
              "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    (record,) = json.loads((tmp_path / "b" / "results.json").read_text())["records"]
    for phase in ("power_model_only", "power_end_to_end"):
        power = record[phase]
        assert power["input_rail"] == "VDD_IN" and power["mean_input_mw"] == 17946
        assert power["energy_basis"] == "above_idle" and power["mean_above_idle_mw"] == 0
        assert power["samples"] >= 3
    assert "mJ per image" in (tmp_path / "b" / "results.md").read_text()


def test_benchmark_power_on_without_tegrastats_is_refused(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    res = run("benchmark", tiny_onnx, "--power", "on", "--out", tmp_path / "b")
    assert res.exit_code == 2 and "tegrastats" in res.output
    assert not (tmp_path / "b").exists()
