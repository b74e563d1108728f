"""Every closed set of choices edgeld accepts, defined once. Standard library only.

The CLI derives its `click.Choice` lists from these, and the heavy modules that act on a choice
(training, distillation, export, runners) import the same constants: a new choice is added here,
and the command line cannot drift from what the code accepts. Order is the order `--help` shows.
"""
from __future__ import annotations

# `train --role`: the roles one training loop knows
ROLES = ("student", "teacher", "reference", "refiner")
# `train --kd`: fsf = FSF-LD feature sharing; output, fitnet, at, cwd = baselines
KD_METHODS = ("none", "fsf", "fsf-out", "output", "fitnet", "at", "cwd")
# `train --device`
TRAIN_DEVICES = ("auto", "cpu", "cuda")

# `evaluate --reference`: the annotation compared with (ISBI 2015 has two annotators)
REFERENCES = ("senior", "junior", "mean")

# how a checkpoint or built-in model runs (torch runner)
TORCH_BACKENDS = ("torch-cpu", "torch-cuda", "torch-cuda-fp16", "torch-cuda-fp16-graphs")
# ONNX Runtime execution providers per backend name, each falling back to the next in order
ORT_BACKENDS = {
    "onnxruntime-cpu": ("CPUExecutionProvider",),
    "onnxruntime-cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "onnxruntime-tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
# `benchmark --backend`
BACKENDS = TORCH_BACKENDS + tuple(ORT_BACKENDS)
# `benchmark --power`: sample tegrastats during timing (auto: on a Jetson with tegrastats)
POWER_MODES = ("auto", "on", "off")

# `export --to`
EXPORT_FORMATS = ("onnx", "fp16", "int8", "engine")
# `export --precision` (engines): what the ONNX holds
PRECISIONS = ("fp32", "fp16", "int8")
# `export --target` (INT8 layout): tensorrt = symmetric signed, float biases; cpu = zero points
INT8_TARGETS = ("tensorrt", "cpu")
# `export --method`: INT8 activation-range calibration
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# `calibrate --method`: how calibration images are chosen
SELECTION_METHODS = ("diverse", "random", "first")
# `predict --decode` (default reduced) and `evaluate --decode` (default full, the published
# figures): a JPEG decoded only as far as the model chain needs, or every pixel
DECODE_MODES = ("reduced", "full")
