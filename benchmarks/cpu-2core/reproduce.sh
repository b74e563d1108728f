#!/usr/bin/env bash
# Every CPU figure of the README that involves the shipped student, in one run, on a quiet machine
# (nothing else running: these include latency). About 40 minutes on the 2-core VM.
#   bash benchmarks/cpu-2core/reproduce.sh ../shared/data/isbi2015 2>&1 | tee out/reproduce.log
set -euo pipefail
D=${1:-../shared/data/isbi2015}
B=benchmarks/cpu-2core
mkdir -p out/eval
ev() { echo "## edgeld evaluate $*"; edgeld evaluate "$@" 2>&1 | grep -v "^evaluating\|it/s\]\|batch/s\]" || true; }
ev isbi2015-student --data $D --split test1 --json out/eval/student-test1-senior.json --baseline
ev isbi2015-student --data $D --split test1 --reference mean --json out/eval/student-test1-mean.json
edgeld export isbi2015-student --to onnx --out out/isbi2015-student.onnx
edgeld export isbi2015-refiner --to onnx --out out/isbi2015-refiner.onnx
edgeld export isbi2015-refiner-coarse --to onnx --out out/isbi2015-refiner-coarse.onnx
ev out/isbi2015-student.onnx --data $D --split test1 --json out/eval/onnx-test1-senior.json
ev isbi2015-student --refiner isbi2015-refiner --data $D --split test1 --json out/eval/cascade-test1-senior.json
ev isbi2015-student --refiner isbi2015-refiner --data $D --split test1 --reference mean
ev isbi2015-student --refiner isbi2015-refiner-coarse --refiner isbi2015-refiner --data $D --split test1 \
    --json out/eval/cascade3-test1-senior.json
ev isbi2015-student --refiner isbi2015-refiner-coarse --refiner isbi2015-refiner --data $D --split test1 \
    --reference mean
# edge artifacts (calibration manifests are committed; their tensors are rebuilt when missing)
edgeld calibrate --data $D --split train --count 64 --out calibration/isbi2015-train-diverse64
edgeld calibrate --data $D --split train --count 64 --method random --out calibration/isbi2015-train-random64
edgeld export out/isbi2015-student.onnx --to fp16 --data $D --split train --out out/student.fp16.onnx
for cal in diverse64 random64; do
  edgeld export out/isbi2015-student.onnx --to int8 --calibration calibration/isbi2015-train-$cal \
      --data $D --split train --out out/student.int8-trt-$cal.onnx
  edgeld export out/isbi2015-student.onnx --to int8 --calibration calibration/isbi2015-train-$cal \
      --target cpu --max-mre-increase 0.02 --data $D --split train --out out/student.int8-cpu-$cal.onnx
done
cp out/student.int8-trt-diverse64.onnx out/student.int8-trt.onnx; cp out/student.int8-trt-diverse64.onnx.json out/student.int8-trt.onnx.json
cp out/student.int8-cpu-diverse64.onnx out/student.int8-cpu.onnx; cp out/student.int8-cpu-diverse64.onnx.json out/student.int8-cpu.onnx.json
for m in out/student.fp16.onnx out/student.int8-{trt,cpu}-{diverse64,random64}.onnx; do ev $m --data $D --split test1; done
# latency + accuracy records
edgeld benchmark isbi2015-student out/isbi2015-student.onnx --data $D --split test1 --seconds 5 \
    --out $B/walking-skeleton
edgeld benchmark isbi2015-student out/isbi2015-student.onnx out/student.fp16.onnx out/student.int8-trt.onnx \
    out/student.int8-cpu.onnx --data $D --split test1 --seconds 5 --out $B/edge-artifacts
edgeld benchmark out/isbi2015-student.onnx out/student.int8-cpu.onnx --refiner out/isbi2015-refiner.onnx \
    --data $D --split test1 --seconds 5 --out $B/cascade
edgeld benchmark out/isbi2015-student.onnx out/student.int8-cpu.onnx --refiner out/isbi2015-refiner-coarse.onnx \
    --refiner out/isbi2015-refiner.onnx --data $D --split test1 --seconds 5 --out $B/cascade3
# issue 5's peers: INT8 student vs FP32 teacher (torch) vs the heavy reference, one run, twice
python benchmarks/kd-comparison/init_checkpoint.py reference out/reference-init.safetensors
for run in 1 2; do
  edgeld benchmark out/student.int8-cpu.onnx out/isbi2015-student.onnx isbi2015-teacher \
      out/reference-init.safetensors --data $D --split test1 --seconds 3 --min-runs 10 --repeat 3 \
      --out $B/peers-run$run
done
# INT8 refiners: a patch calibration set around the student's landmarks, then both cascades
edgeld calibrate --data $D --split train --count 64 --for isbi2015-refiner \
    --out calibration/isbi2015-refiner-train-diverse64
edgeld export out/isbi2015-refiner.onnx --to int8 --calibration calibration/isbi2015-refiner-train-diverse64 \
    --target cpu --data $D --split train --out out/refiner.int8-cpu.onnx
edgeld benchmark out/isbi2015-student.onnx out/student.int8-cpu.onnx --refiner out/refiner.int8-cpu.onnx \
    --data $D --split test1 --seconds 3 --repeat 3 --out $B/int8-cascade
edgeld benchmark out/isbi2015-student.onnx out/student.int8-cpu.onnx --refiner out/isbi2015-refiner.onnx \
    --data $D --split test1 --seconds 3 --repeat 3 --out $B/fp32-refiner-cascade
edgeld benchmark out/isbi2015-student.onnx out/student.int8-cpu.onnx --data $D --split test1 \
    --seconds 3 --repeat 3 --threads 2 --out $B/distance-to-limit
edgeld report $B/edge-artifacts/results.json $B/cascade/results.json $B/cascade3/results.json \
    $B/peers-run1/results.json $B/peers-run2/results.json --latency-budget-ms 40 --mre-budget-mm 2 \
    --devices benchmarks/devices.example.json --out $B/report
