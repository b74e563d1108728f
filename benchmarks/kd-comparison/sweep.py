"""Train the KD comparison: every distillation method x seeds on the same student, data and recipe,
plus the teacher with and without its auxiliary tasks, and the heavy reference model.

Each run is a plain `edgeld train` command (printed to runs.txt), so any one of them can be rerun
alone; this script only runs them side by side, one thread each, and stops them at a deadline.

    python benchmarks/kd-comparison/sweep.py --data DATA --out runs/kd --device cuda --parallel 23
    python benchmarks/kd-comparison/sweep.py --data DATA --out runs/strong --device cuda --arm strong \
        --parallel 6
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

KD_METHODS = ("none", "output", "fitnet", "at", "cwd", "fsf", "fsf-out")
# the strong-recipe arm (accuracy issue, "a recipe that generalises"): no-KD student and teacher with
# SCN-like geometry (rotation 15 deg, scale exp(+-0.2), shift 8%, elastic 5x5 grid up to 8 input px
# = 5 mm) and three times the steps; every other setting is the CPU recipe's
STRONG_RECIPE = ["--rotate", "15", "--scale-range", "0.2", "--shift", "0.08", "--elastic", "8"]
STRONG_EPOCHS = 300
ARMS = ("kd", "strong", "all")


def strong_runs(seeds: list[int], epochs: int = STRONG_EPOCHS) -> list[tuple[str, list[str]]]:
    """The strong-recipe arm: the no-KD student and the teacher (its default multi-task recipe)."""
    recipe = [*STRONG_RECIPE, "--epochs", str(epochs)]
    return ([(f"student-strong-s{seed}", ["--seed", str(seed), *recipe]) for seed in seeds]
            + [(f"teacher-strong-s{seed}", ["--role", "teacher", "--seed", str(seed), *recipe])
               for seed in seeds])


def planned_runs(seeds: list[int], teacher: str, teacher_seeds: list[int],
                 reference: bool) -> list[tuple[str, list[str]]]:
    """(run name, edgeld train arguments) for every run of the KD comparison."""
    runs = []
    for seed in seeds:
        for kd in KD_METHODS:
            extra = [] if kd == "none" else ["--kd", kd, "--teacher", teacher]
            runs.append((f"student-{kd}-s{seed}", ["--seed", str(seed), *extra]))
    for seed in teacher_seeds:
        for aux in ("aux", "no-aux"):
            runs.append((f"teacher-{aux}-s{seed}", ["--role", "teacher", f"--{aux}", "--seed", str(seed)]))
    if reference:
        runs.append(("reference-s0", ["--role", "reference", "--seed", "0"]))
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--teacher", default="isbi2015-teacher")
    ap.add_argument("--teacher-seeds", default="0,1")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--epochs", type=int, default=None,
                    help=f"Default: the recipe's (100; the strong arm's {STRONG_EPOCHS}).")
    ap.add_argument("--arm", choices=ARMS, default="kd",
                    help="kd: the KD comparison; strong: the strong-recipe arm; all: both.")
    ap.add_argument("--strong-seeds", default="0,1,2")
    ap.add_argument("--extra-args", default="",
                    help="More `edgeld train` options for every run, e.g. '--val-count 3' (smoke tests).")
    ap.add_argument("--only", default="", help="Comma-separated run-name prefixes to keep.")
    ap.add_argument("--deadline-s", type=float, default=None,
                    help="Stop runs still going after this many seconds (their best so far stays).")
    args = ap.parse_args()
    ints = lambda text: [int(v) for v in text.split(",") if v]  # noqa: E731
    runs = []
    if args.arm in ("kd", "all"):
        runs += planned_runs(ints(args.seeds), args.teacher, ints(args.teacher_seeds),
                             not args.no_reference)
    if args.arm in ("strong", "all"):
        runs += strong_runs(ints(args.strong_seeds), args.epochs or STRONG_EPOCHS)
    if args.only:
        runs = [r for r in runs if any(r[0].startswith(p) for p in args.only.split(","))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "edgeld", "train", "--data", args.data, "--device", args.device,
            "--threads", "1"] + (["--epochs", str(args.epochs)] if args.epochs else [])
    base += shlex.split(args.extra_args)
    with open(out / "runs.txt", "w") as fh:
        for name, extra in runs:
            fh.write(" ".join(["edgeld", *base[3:], "--out", str(out / name), *extra]) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    start, pending, running, status = time.time(), list(runs), {}, {}
    while pending or running:
        while pending and len(running) < args.parallel:
            name, extra = pending.pop(0)
            log = open(out / f"{name}.log", "w")
            cmd = base + ["--out", str(out / name), *extra]
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        time.sleep(2)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                status[name] = proc.returncode
                log.close()
                del running[name]
                print(f"{time.time() - start:7.1f} s  {name}: exit {proc.returncode}", flush=True)
        if args.deadline_s and time.time() - start > args.deadline_s:
            for name, (proc, log) in running.items():
                proc.kill()
                proc.wait()
                log.close()
                status[name] = "stopped at deadline"
                print(f"{time.time() - start:7.1f} s  {name}: stopped at the deadline", flush=True)
            running.clear()
            for name, _ in pending:
                status[name] = "not started"
            pending.clear()
    failed = {k: v for k, v in status.items() if v != 0}
    print(f"done in {time.time() - start:.0f} s; {len(status) - len(failed)} finished, "
          f"{len(failed)} not: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
