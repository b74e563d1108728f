#!/usr/bin/env bash
# Every latency target of the latency issue, measured in one sitting on one host, into this folder:
# the FP32 and INT8 cascades (model only and decoded image -> mm), the teacher against both
# students, where the INT8 student's and cascade's time goes, and JPEG file -> mm. Needs the artifacts of
# README "Edge artifacts" in out/ (student and refiner ONNX, their INT8 `cpu` exports).
#   bash benchmarks/cpu-2core/fast-host/run.sh [OUT_DIR]     (default: this folder)
set -euo pipefail
cd "$(dirname "$0")/../../.."
DIR=${1:-benchmarks/cpu-2core/fast-host}
mkdir -p "$DIR"
{ date -u; git rev-parse HEAD; lscpu | grep -E "Model name|^CPU\(s\)"; vmstat 1 3; } > $DIR/host.txt
edgeld benchmark out/isbi2015-student.onnx out/student.int8-cpu.onnx --refiner out/refiner.int8-cpu.onnx \
    --seconds 3 --repeat 3 --cpus 0,1 --out $DIR/cascade
edgeld benchmark isbi2015-teacher out/isbi2015-student.onnx out/student.int8-cpu.onnx --seconds 3 --repeat 3 \
    --min-runs 20 --cpus 0,1 --out $DIR/student-vs-teacher
taskset -c 0,1 python benchmarks/cpu-2core/pipeline-ab/where_time_goes.py > $DIR/where_time_goes.txt
taskset -c 0,1 python benchmarks/cpu-2core/pipeline-ab/where_time_goes.py --refiner out/refiner.int8-cpu.onnx \
    > $DIR/where_time_goes-cascade.txt
taskset -c 0,1 python benchmarks/cpu-2core/file-path/measure.py --student out/student.int8-cpu.onnx \
    --refiner out/refiner.int8-cpu.onnx --threads 2 --runs 40 --rounds 5 --json $DIR/file-path.json
vmstat 1 3 >> $DIR/host.txt
