#!/usr/bin/env bash
# The whole GPU session of the KD comparison, as run through the device tool (one call):
#   1. torch CUDA latency of student, teacher and the heavy reference on the quiet GPU;
#   2. the sweep (every run side by side, one CPU thread each, stopped at DEADLINE seconds);
#   3. test1 evaluation of every run on the reduced-resolution copy;
#   4. student checkpoints (float16 storage) packed for full-resolution evaluation elsewhere.
# DATA is a copy made by shrink_dataset.py; OUT receives the results.
# ARM=strong trains the strong-recipe arm instead (sweep.py --arm strong: no-KD student and teacher,
# rotation 15, scale 0.2, shift 0.08, elastic 8 px, 300 epochs, 3 seeds; see README "Strong recipe");
# BENCH=0 skips step 1; the strong teachers are packed too (teachers-strong.tar).
set -u
DATA=${DATA:-.gpu/isbi2015-q}; OUT=${OUT:-out/gpu-session}; DEVICE=${DEVICE:-cuda}
DEADLINE=${DEADLINE:-360}; EPOCHS=${EPOCHS:-}; PARALLEL=${PARALLEL:-23}
ARM=${ARM:-kd}; BENCH=${BENCH:-1}; EXTRA=${EXTRA:-}  # EXTRA: more train options (smoke tests)
BACKENDS=${BACKENDS:-"--backend torch-cuda --backend torch-cuda-fp16 --backend torch-cuda-fp16-graphs"}
PY=${PY:-python3}; ONLY=${ONLY:-}
BENCH_MODELS=${BENCH_MODELS:-"isbi2015-student isbi2015-teacher /tmp/edgeld-gpu/reference-init.safetensors"}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$OUT" /tmp/edgeld-gpu; OUT=$(cd "$OUT" && pwd)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
if [ "$BENCH" != 0 ]; then
  $PY benchmarks/kd-comparison/init_checkpoint.py reference /tmp/edgeld-gpu/reference-init.safetensors
  timeout 150 $PY -m edgeld benchmark $BENCH_MODELS $BACKENDS --seconds 1 --out /tmp/edgeld-gpu/bench \
      && cp /tmp/edgeld-gpu/bench/results.json "$OUT/latency.json"
fi
$PY benchmarks/kd-comparison/sweep.py --data "$DATA" --out /tmp/edgeld-gpu/kd --device "$DEVICE" \
    --parallel "$PARALLEL" --deadline-s "$DEADLINE" --arm "$ARM" ${EPOCHS:+--epochs $EPOCHS} \
    ${ONLY:+--only $ONLY} ${EXTRA:+--extra-args "$EXTRA"}
EVAL_BACKEND=torch-cpu; [ "$DEVICE" = cuda ] && EVAL_BACKEND=torch-cuda
timeout 150 $PY benchmarks/kd-comparison/collect.py /tmp/edgeld-gpu/kd --data "$DATA" --split test1 \
    --out /tmp/edgeld-gpu/collect --backend $EVAL_BACKEND --jobs 8 \
    && cp /tmp/edgeld-gpu/collect/results.json "$OUT/test1.json"
(cd /tmp/edgeld-gpu/kd && tar czf "$OUT/logs.tgz" runs.txt *.log */metrics.jsonl */config.json */summary.json 2>/dev/null)
for seed in 0 1 2; do
  $PY - "$seed" "$OUT" <<'PY'
import sys, tarfile
from pathlib import Path
from edgeld.models.checkpoint import shrink_checkpoint
seed, out = sys.argv[1], Path(sys.argv[2])
with tarfile.open(out / f"students-s{seed}.tar", "w") as tar:
    for ckpt in sorted(Path("/tmp/edgeld-gpu/kd").glob(f"student-*-s{seed}/best.safetensors")):
        small = Path("/tmp/edgeld-gpu") / f"{ckpt.parent.name}.safetensors"
        shrink_checkpoint(ckpt, small)
        tar.add(small, arcname=small.name)
PY
done
$PY - "$OUT" <<'PY'
import sys, tarfile
from pathlib import Path
from edgeld.models.checkpoint import shrink_checkpoint
out = Path(sys.argv[1])
teachers = sorted(Path("/tmp/edgeld-gpu/kd").glob("teacher-strong-s*/best.safetensors"))
if teachers:
    with tarfile.open(out / "teachers-strong.tar", "w") as tar:
        for ckpt in teachers:
            small = Path("/tmp/edgeld-gpu") / f"{ckpt.parent.name}.safetensors"
            shrink_checkpoint(ckpt, small)
            tar.add(small, arcname=small.name)
PY
ls -la "$OUT"
