"""Train a student of another LandmarkNet shape with the shipped student's recipe (output KD from
isbi2015-teacher, 100 epochs, the validated run's 130/20 split of its seed), for the accuracy side
of the INT8-friendly comparison (shapes.py measures the latency side).

`edgeld train` builds the shipped student's shape; this probe swaps the shape in for one run. The
checkpoint records its shape, so `edgeld evaluate` and `edgeld export` read it like any other.

    python benchmarks/cpu-2core/int8-friendly/train_shape.py ../shared/data/isbi2015 runs/shape \
        --widths 16,32,64,64,128 --depths 0,2,2,1 --decoder-width 32 --seed 2
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from edgeld.config import ModelSpec, TrainSpec
from edgeld.train import trainer


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--widths", type=_ints, required=True)
    parser.add_argument("--depths", type=_ints, required=True)
    parser.add_argument("--decoder-width", type=int, required=True)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--val-count", type=int, default=20)
    args = parser.parse_args()
    trainer.ROLE_MODELS["student"] = replace(ModelSpec(), widths=args.widths, depths=args.depths,
                                             decoder_width=args.decoder_width)
    spec = replace(TrainSpec(), seed=args.seed, epochs=args.epochs, val_count=args.val_count)
    best = trainer.train(args.data, args.out, role="student", spec=spec, kd="output",
                         teacher="isbi2015-teacher", device="cpu")
    print(best)


if __name__ == "__main__":
    main()
