"""The GPU sweep's command lines (benchmarks/kd-comparison/sweep.py) are valid `edgeld train`
commands, and its strong-recipe arm asks for the recipe it says."""
import importlib.util
import subprocess
import sys
from pathlib import Path

from edgeld.cli import train

SWEEP = Path(__file__).resolve().parents[1] / "benchmarks" / "kd-comparison" / "sweep.py"


def _sweep():
    spec = importlib.util.spec_from_file_location("kd_sweep", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_planned_command_parses():
    sweep = _sweep()
    runs = sweep.planned_runs([0, 1, 2], "isbi2015-teacher", [0, 1], True) + sweep.strong_runs([0, 1, 2])
    assert len({name for name, _ in runs}) == len(runs) == 21 + 4 + 1 + 6
    for name, extra in runs:
        ctx = train.make_context("train", ["--data", "D", "--out", f"runs/{name}", "--device", "cuda",
                                           "--threads", "1", *extra])
        if name.startswith(("student-strong", "teacher-strong")):
            p = ctx.params
            assert (p["rotate"], p["scale_range"], p["shift"], p["elastic"], p["epochs"]) == \
                (15, 0.2, 0.08, 8, 300), name
            assert p["kd"] == "none" and p["role"] == ("teacher" if name.startswith("t") else "student")


def test_the_strong_arm_runs_on_the_cpu(shared_dataset, tmp_path):
    """`--arm strong --epochs 1`: the arm's runs start, train an epoch and finish on the CPU (one
    seed, the 12 synthetic images at 160x128: 8 px of elastic is inside its fold limit)."""
    out = tmp_path / "sweep"
    result = subprocess.run([sys.executable, str(SWEEP), "--data", str(shared_dataset), "--out", str(out),
                             "--device", "cpu", "--arm", "strong", "--strong-seeds", "0", "--epochs", "1",
                             "--extra-args", "--val-count 3 --input-size 160x128 --batch-size 4"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = (out / "runs.txt").read_text().splitlines()
    assert len(commands) == 2 and all("--elastic 8" in c and "--epochs 1" in c for c in commands)
    for name in ("student-strong-s0", "teacher-strong-s0"):
        assert (out / name / "best.safetensors").is_file()
