#!/usr/bin/env bash
# The mean-annotation teacher and output-KD students distilled from it (2-core CPU, 2026-12-04).
# Run from the repository root; writes runs/teacher-mean-s0, runs/{student,refiner}-kd-mean-s{1,0}
# and the test1 JSONs under runs/eval-*. The commands that ran, in this order (the teacher, then the rest).
set -euo pipefail
D=../shared/data/isbi2015; Q=runs/data/isbi2015-q; T=runs/teacher-mean-s0
[ -d $Q ] || python benchmarks/kd-comparison/shrink_dataset.py $D $Q 4
edgeld train --data $Q --role teacher --reference mean --seed 0 --device cpu --threads 2 --out $T   # 40 min
mkdir -p runs/eval-teacher-mean
edgeld decode fit $T/best.safetensors --data $D --out $T/fitted.safetensors
for ref in mean senior; do
  edgeld evaluate $T/fitted.safetensors --data $D --split test1 --reference $ref --json runs/eval-teacher-mean/alone-$ref.json
done
for s in 1 0; do
  st=runs/student-kd-mean-s$s; rf=runs/refiner-kd-mean-s$s; o=runs/eval-kd-mean-s$s; mkdir -p $o
  edgeld train --data $Q --kd output --teacher $T/best.safetensors --seed $s --device cpu --threads 2 \
      --reference mean --out $st                                                                   # 12 min
  edgeld train --data $D --role refiner --seed $s --stage1 $st/best.safetensors --device cpu --threads 2 \
      --reference mean --out $rf                                                                   # 2.5 min
  edgeld decode fit $st/best.safetensors --data $D --out $st/fitted.safetensors
  edgeld decode fit $st/best.safetensors --refiner $rf/best.safetensors --data $D --out $rf/fitted.safetensors
  for ref in mean senior; do
    edgeld evaluate $st/fitted.safetensors --refiner $rf/fitted.safetensors --data $D --split test1 --reference $ref \
        --json $o/cascade-$ref.json
    edgeld evaluate $st/fitted.safetensors --data $D --split test1 --reference $ref --json $o/alone-$ref.json
  done
done
