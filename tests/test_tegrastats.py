"""tegrastats parsing, input-rail choice, energy arithmetic and the background sampler.

The sample lines below are real tegrastats output copied verbatim from public GitHub issues
(source on each). No Jetson is attached here, so the sampler runs a fake command instead.

Not covered by a real line: Jetson Orin Nano. No public line that names the module as an
Orin Nano turned up, so none is included (and none is made up); it prints the same
VDD_IN / VDD_CPU_GPU_CV / VDD_SOC rails as the Orin NX line below.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from edgeld.bench import tegrastats
from edgeld.bench.tegrastats import (
    TegraSample,
    TegrastatsSampler,
    input_power_mw,
    input_rail,
    parse_line,
    summarize_power,
)

# Jetson Orin NX 8GB, JetPack 6 format (timestamp, "mW/mW", lower-case temps, GR3D "@[MHz]").
# Source: https://github.com/rbonghi/jetson_stats/issues/624 (issue description).
# The issue does not name the module; Orin NX 8GB is inferred: 6 cores at 1984 MHz is above
# any Orin Nano CPU clock, 7620 MB RAM, and NVDLA0 / PVA0 exist (an Orin Nano has neither).
ORIN_NX_8GB = "05-15-2025 18:30:28 RAM 6982/7620MB (lfb 5x1MB) SWAP 2640/16384MB (cached 202MB) CPU [97%@1984,95%@1984,95%@1984,91%@1984,88%@1984,93%@247] EMC_FREQ 18%@3199 GR3D_FREQ 84%@[713] NVENC 1%@115 NVDEC 40%@115 NVJPG off NVJPG1 off VIC 31%@115 OFA off NVDLA0 off PVA0_FREQ off APE 174 cv0@63.031C cpu@65.562C soc2@64.156C soc0@63.031C cv1@62.937C gpu@63.5C tj@65.562C soc1@64.718C cv2@60.875C VDD_IN 17946mW/15710mW VDD_CPU_GPU_CV 8896mW/7585mW VDD_SOC 3923mW/3515mW"

# Jetson AGX Orin 64GB (12 cores, 62801 MB), JetPack 5/6 format; two GPCs ("@[0,0]"),
# powered-down sensors read -256C, two unconnected "NC" channels.
# Source: https://github.com/GDWR/jetson_exporter/issues/14 (issue description).
AGX_ORIN = "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"

# Jetson AGX Xavier 16GB (8 cores, 15692 MB), JetPack 4.2: old "cur/avg" rails without mW,
# upper-case temps, GR3D without a clock.
# Source: https://github.com/martinkersner/gtop/pull/7 (comment by alexis-gruet-deel, 2019-06-17).
AGX_XAVIER = "RAM 14700/15692MB (lfb 3x2MB) SWAP 898/8192MB (cached 23MB) CPU [0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190] EMC_FREQ 0% GR3D_FREQ 0% AO@30C GPU@30.5C Tboard@31C Tdiode@32C AUX@30.5C CPU@31.5C thermal@30.8C PMIC@100C GPU 463/463 CPU 618/618 SOC 2936/2936 CV 0/0 VDDRQ 309/309 SYS5V 3306/3306"

# Jetson Nano (L4T 32): POM_5V_* rails, IRAM field.
# Source: https://github.com/dusty-nv/jetson-inference/issues/1206 (comment by sas9624, 2021-09-01).
JETSON_NANO = "RAM 1504/3956MB (lfb 331x4MB) IRAM 0/252kB(lfb 252kB) CPU [44%@1479,22%@1479,26%@1479,14%@1479] EMC_FREQ 7%@1600 GR3D_FREQ 86%@921 NVDEC 716 VIC_FREQ 0%@140 APE 25 PLL@39C CPU@44C PMIC@100C GPU@42.5C AO@47.5C thermal@42.5C POM_5V_IN 4531/3285 POM_5V_GPU 1113/213 POM_5V_CPU 539/722"

REAL_LINES = (ORIN_NX_8GB, AGX_ORIN, AGX_XAVIER, JETSON_NANO)


def test_orin_nx_line():
    s = parse_line(ORIN_NX_8GB)
    assert s.timestamp == "05-15-2025 18:30:28"
    assert (s.ram_used_mb, s.ram_total_mb) == (6982, 7620)
    assert s.cpu_load_pct == [97, 95, 95, 91, 88, 93]
    assert s.cpu_mhz == [1984] * 5 + [247]
    assert (s.gpu_load_pct, s.gpu_mhz) == (84, 713)
    assert s.rails_mw == {"VDD_IN": (17946, 15710), "VDD_CPU_GPU_CV": (8896, 7585),
                          "VDD_SOC": (3923, 3515)}
    assert input_rail(s) == "VDD_IN"
    assert input_power_mw(s) == 17946 and input_power_mw(s, average=True) == 15710
    assert s.temperatures_c["tj"] == 65.562 and s.temperatures_c["gpu"] == 63.5
    assert len(s.temperatures_c) == 9


def test_agx_orin_line_sums_rails_and_drops_dead_sensors():
    s = parse_line(AGX_ORIN)
    assert len(s.cpu_load_pct) == 12 and set(s.cpu_mhz) == {729}
    assert (s.gpu_load_pct, s.gpu_mhz) == (0, 0)
    assert set(s.rails_mw) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "NC", "VDDQ_VDD2_1V8AO"}
    assert s.rails_mw["VIN_SYS_5V0"] == (4025, 4025)
    assert input_rail(s) == "sum(VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO)"
    assert input_power_mw(s) == 2340 + 390 + 4025 + 301
    # CV0..2 and GPU read -256C (powered down): not real temperatures.
    assert s.temperatures_c == {"CPU": 44.562, "Tboard": 32, "SOC2": 40.093, "Tdiode": 33,
                                "SOC0": 41.093, "tj": 44.343, "SOC1": 41.25}


def test_agx_xavier_old_power_format():
    s = parse_line(AGX_XAVIER)
    assert s.timestamp is None
    assert (s.ram_used_mb, s.ram_total_mb) == (14700, 15692)
    assert len(s.cpu_load_pct) == 8
    assert (s.gpu_load_pct, s.gpu_mhz) == (0, None)
    assert s.rails_mw == {"GPU": (463, 463), "CPU": (618, 618), "SOC": (2936, 2936),
                          "CV": (0, 0), "VDDRQ": (309, 309), "SYS5V": (3306, 3306)}
    assert input_power_mw(s) == 463 + 618 + 2936 + 0 + 309 + 3306
    assert s.temperatures_c["CPU"] == 31.5 and s.temperatures_c["PMIC"] == 100


def test_jetson_nano_pom_rails():
    s = parse_line(JETSON_NANO)
    assert (s.ram_used_mb, s.ram_total_mb) == (1504, 3956)  # not the IRAM field
    assert (s.gpu_load_pct, s.gpu_mhz) == (86, 921)
    assert s.cpu_load_pct == [44, 22, 26, 14]
    assert input_rail(s) == "POM_5V_IN"
    assert input_power_mw(s) == 4531 and input_power_mw(s, average=True) == 3285
    assert "NVDEC" not in s.rails_mw and "APE" not in s.rails_mw
    assert s.temperatures_c["GPU"] == 42.5


def test_both_power_formats_agree():
    # Same values written the L4T 32 way and the L4T 35+ way.
    old = parse_line("RAM 100/200MB VDD_IN 5014/4000 VDD_SOC 10/20")
    new = parse_line("RAM 100/200MB VDD_IN 5014mW/4000mW VDD_SOC 10mW/20mW")
    assert old.rails_mw == new.rails_mw == {"VDD_IN": (5014, 4000), "VDD_SOC": (10, 20)}


def test_old_shared_cpu_clock_and_off_cores():
    s = parse_line("RAM 3468/3983MB (lfb 48x4MB) cpu [17%,13%,off,5%]@408 GR3D 3%@76")
    # "cpu" (lower case, TX1-era) is not the "CPU [" field; the GPU still parses.
    assert (s.gpu_load_pct, s.gpu_mhz) == (3, 76)
    s = parse_line("RAM 1/2MB CPU [17%,off,5%]@408")
    assert s.cpu_load_pct == [17, None, 5] and s.cpu_mhz == [408, None, 408]


@pytest.mark.parametrize("garbage", ["", "hello world", "NVIDIA Jetson Orin Nano",
                                     "VDD_IN 5014mW/5014mW", "tegrastats: command not found"])
def test_garbage_raises(garbage):
    with pytest.raises(ValueError, match="not a tegrastats line"):
        parse_line(garbage)


def test_line_without_rails_has_no_input_power():
    with pytest.raises(ValueError, match="no power rails"):
        input_power_mw(parse_line("RAM 1/2MB CPU [1%@100]"))


def _sample(vdd_in: float, temps: dict[str, float]) -> TegraSample:
    return TegraSample(ram_used_mb=1, ram_total_mb=2, temperatures_c=temps,
                       rails_mw={"VDD_IN": (vdd_in, 0.0)})


def test_summarize_power_arithmetic():
    samples = [_sample(5000, {"tj": 50.0, "cpu": 40.0}), _sample(7000, {"tj": 55.5}),
               _sample(6000, {"tj": 52.0, "cpu": 44.0})]
    out = summarize_power(samples, idle_mw=4000, images=300, seconds=10.0)
    assert out["mean_input_mw"] == pytest.approx(6000)
    assert out["mean_above_idle_mw"] == pytest.approx(2000)
    # 2000 mW * 10 s = 20000 mJ over 300 images.
    assert out["energy_per_image_mj"] == pytest.approx(20000 / 300)
    assert out["energy_basis"] == "above_idle"
    assert out["max_temperatures_c"] == {"tj": 55.5, "cpu": 44.0}
    assert out["samples"] == 3 and out["input_rail"] == "VDD_IN"

    total = summarize_power(samples, idle_mw=None, images=300, seconds=10.0)
    assert total["mean_above_idle_mw"] is None and total["energy_basis"] == "total"
    assert total["energy_per_image_mj"] == pytest.approx(6000 * 10 / 300)


def test_summarize_power_real_lines():
    out = summarize_power([parse_line(ORIN_NX_8GB)], idle_mw=5000.0, images=100, seconds=2.0)
    assert out["energy_per_image_mj"] == pytest.approx((17946 - 5000) * 2 / 100)
    assert out["max_temperatures_c"]["tj"] == 65.562


def test_summarize_power_rejects_bad_input():
    with pytest.raises(ValueError):
        summarize_power([], None, 1, 1.0)
    with pytest.raises(ValueError):
        summarize_power([parse_line(ORIN_NX_8GB)], None, 0, 1.0)


def fake_tegrastats_command(lines: tuple[str, ...]) -> list[str]:
    """A stand-in for the tegrastats binary, which needs Jetson hardware that is absent here.

    It prints the given real lines (plus one non-stats line tegrastats may emit) and then
    keeps running like tegrastats does, so the sampler has to terminate it.
    """
    script = ("import sys, time\n"
              f"for line in {list(lines)!r} + ['Warning: some rails need root']:\n"
              "    print(line, flush=True)\n"
              "    time.sleep(0.01)\n"
              "time.sleep(60)\n")
    return [sys.executable, "-c", script]


def test_sampler_collects_lines_from_fake_command():
    start = time.monotonic()
    with TegrastatsSampler(interval_ms=10, command=fake_tegrastats_command(REAL_LINES)) as sampler:
        deadline = time.monotonic() + 20
        while len(sampler.lines) < len(REAL_LINES) + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc = sampler._proc
    assert time.monotonic() - start < 30  # terminated, did not wait out the fake's sleep(60)
    assert proc is not None and proc.poll() is not None
    assert sampler.lines[:len(REAL_LINES)] == list(REAL_LINES)
    samples = sampler.samples()  # the warning line is skipped
    assert [input_power_mw(s) for s in samples] == [17946, 7056, 7632, 4531]


def test_sampler_kills_a_process_that_ignores_sigterm():
    script = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('RAM 1/2MB', flush=True)\ntime.sleep(60)\n")
    with TegrastatsSampler(command=[sys.executable, "-c", script]) as sampler:
        deadline = time.monotonic() + 20
        while not sampler.lines and time.monotonic() < deadline:
            time.sleep(0.02)
        proc = sampler._proc
    assert proc is not None and proc.poll() is not None
    assert sampler.lines == ["RAM 1/2MB"]


def test_sampler_needs_tegrastats_binary(monkeypatch):
    monkeypatch.setattr(tegrastats.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs an NVIDIA Jetson"), TegrastatsSampler(100):
        pass


def test_sampler_builds_tegrastats_command(monkeypatch):
    seen = {}
    real_popen = subprocess.Popen  # the module attribute is patched below

    def fake_popen(cmd, **kwargs):
        seen["cmd"] = cmd
        return real_popen([sys.executable, "-c", "pass"], **kwargs)

    monkeypatch.setattr(tegrastats.shutil, "which", lambda name: "/usr/bin/tegrastats")
    monkeypatch.setattr(tegrastats.subprocess, "Popen", fake_popen)
    with TegrastatsSampler(250):
        pass
    assert seen["cmd"] == ["/usr/bin/tegrastats", "--interval", "250"]


# Input power (VDD_IN, mW) a fake tegrastats prints on each start, in the order PowerMonitor and the
# benchmark start it: the idle baseline, then each timed phase. The lines are the real Orin NX
# line above with VDD_IN's current reading (and tj) replaced; its running average stays 15710 mW,
# so a summary built on the average instead of the readings would show.
PHASE_POWER_MW = {"idle": (4800, 5200, 5000, 5000), "model_only": (6000, 9000, 7500, 9500),
                  "end_to_end": (10000, 12000, 11500, 10500), "model_only_batch2": (7000, 8000)}


def varying_orin_lines(powers: tuple[int, ...]) -> list[str]:
    import re

    lines = []
    for i, mw in enumerate(powers):
        line = re.sub(r"VDD_IN \d+mW/", f"VDD_IN {mw}mW/", ORIN_NX_8GB)
        lines.append(line.replace("tj@65.562C", f"tj@{60 + i}.5C"))
    return lines


def fake_tegrastats_by_start(counter, phases: list[list[str]]) -> list[str]:
    """A stand-in for the tegrastats binary (no Jetson here): its n-th start prints phases[n] at
    once, then keeps running until terminated, as tegrastats does."""
    script = ("import pathlib, sys, time\n"
              f"counter = pathlib.Path({str(counter)!r})\n"
              "n = int(counter.read_text()) if counter.exists() else 0\n"
              "counter.write_text(str(n + 1))\n"
              f"for line in {phases!r}[n]:\n"
              "    print(line, flush=True)\n"
              "time.sleep(60)\n")
    return [sys.executable, "-c", script]


def test_energy_per_image_from_varying_power(tiny_onnx, tmp_path):
    """The benchmark's power path end to end on a real ONNX model: idle baseline, a sampler per
    timed phase, mean power above idle times the phase's seconds over its images, by hand."""
    from edgeld.bench.harness import benchmark_detector
    from edgeld.bench.tegrastats import PowerMonitor
    from edgeld.runtime import LandmarkDetector

    counter = tmp_path / "starts"
    phases = [varying_orin_lines(PHASE_POWER_MW[p]) for p in PHASE_POWER_MW]
    monitor = PowerMonitor(interval_ms=10, command=fake_tegrastats_by_start(counter, phases),
                           idle_seconds=1.0)
    assert monitor.measure_idle() == pytest.approx(5000)
    detector = LandmarkDetector(tiny_onnx)
    timing = {"warmup_s": 0.05, "min_seconds": 1.5, "min_runs": 5, "power": monitor}
    record = benchmark_detector(detector, "tiny", batch=1, **timing)
    batch2 = benchmark_detector(detector, "tiny", batch=2, **timing)
    assert counter.read_text() == "4"  # idle, model-only, end-to-end, model-only at batch 2

    cases = [(record["power_model_only"], record["latency_ms"], 1, "model_only", 8000),
             (record["power_end_to_end"], record["end_to_end_ms"], 1, "end_to_end", 11000),
             (batch2["power_model_only"], batch2["latency_ms"], 2, "model_only_batch2", 7500)]
    for power, latency, batch, phase, mean_mw in cases:
        above = mean_mw - 5000
        assert power["samples"] == len(PHASE_POWER_MW[phase])  # its own phase's lines, all of them
        assert power["mean_input_mw"] == pytest.approx(mean_mw)
        assert power["mean_above_idle_mw"] == pytest.approx(above)
        # mW x s = mJ, over every image the phase ran (runs x batch)
        expected_mj = above * latency["seconds"] / (latency["runs"] * batch)
        assert power["energy_per_image_mj"] == pytest.approx(expected_mj)
        assert power["energy_per_image_mj"] > 0 and power["energy_basis"] == "above_idle"
    assert record["power_model_only"]["max_temperatures_c"]["tj"] == 63.5
