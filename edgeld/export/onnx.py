"""Checkpoint -> simplified ONNX with a manifest, written only if ONNX Runtime matches torch."""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import logging
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from edgeld import __version__
from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, sha256_file
from edgeld.core.manifest import ArtifactEntry, Manifest
from edgeld.model_ref import ModelArg, resolve_model

OPSET = 18
# ONNX Runtime and torch run different convolution kernels; float32 sums differ by ~1e-5 relative.
# Heatmap logits span tens of units, so 1e-3 absolute on logits and 0.05 input pixels on decoded
# landmarks are far below anything that moves a landmark.
LOGIT_ATOL = 1e-3
POINT_ATOL_PX = 0.05


def parity_inputs(io: ModelIO, batch: int = 2, seed: int = 0) -> np.ndarray:
    """Deterministic inputs for parity checks: smooth structure plus noise, in normalized units."""
    rng = np.random.default_rng(seed)
    h, w = io.input_height, io.input_width
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.sin(6 * xx + 3 * yy) * np.cos(4 * yy)
    x = base[None, None] + 0.5 * rng.standard_normal((batch, 1, h, w))
    return x.astype(np.float32)


def export_onnx(model: ModelArg, out: str | Path, opset: int = OPSET) -> Manifest:
    """Export a built-in model or checkpoint to ONNX at `out`, with `out`.json as its manifest."""
    import onnx
    import onnxruntime as ort
    import torch

    from edgeld.models.checkpoint import load_checkpoint

    ref = resolve_model(model)
    out = Path(out)
    if out.suffix != ".onnx":
        raise UserError(f"--out for --to onnx must end in .onnx (got {out})")
    if not ref.is_checkpoint:
        raise UserError(f"--to onnx needs a built-in model or a .safetensors checkpoint, not {ref}")
    source = ref.path
    net, io, meta = load_checkpoint(source)
    training = meta.get("training", {})
    example = torch.zeros(1, 1, io.input_height, io.input_width)
    t0 = time.perf_counter()
    graph = _torch_to_onnx(net, example, io, opset)
    graph = _simplify(graph)
    for key, value in {"edgeld_io": json.dumps(io.to_dict()), "edgeld_version": __version__}.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    data = graph.SerializeToString()

    parity = check_parity(net, data, io)
    manifest = Manifest(
        artifact=ArtifactEntry(file=out.name, sha256=hashlib.sha256(data).hexdigest(),
                               bytes=len(data), kind="onnx", opset=opset, precision="fp32"),
        io=io,
        source={"model": ref.name, "checkpoint_sha256": sha256_file(source),
                "params": meta.get("params"), "macs": meta.get("macs"),
                # the images held out for model selection: where later accuracy gates look
                "validation": {"dataset": training.get("dataset"),
                               "split": "train", "images": training.get("val_images", []),
                               # the annotation it was trained toward: what its gates measure against
                               "reference": training.get("reference")}},
        tools={"edgeld": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
               "onnxruntime": ort.__version__, "onnxsim": _onnxsim_version(),
               "python": platform.python_version()},
        sections={"parity": parity, "export_seconds": round(time.perf_counter() - t0, 2)},
    )
    # manifest first, artifact last: a kill between the two leaves no artifact at `out`, never an
    # artifact without the manifest that vouches for it
    manifest.write(out)
    atomic_write_bytes(out, data)
    return manifest


def _torch_to_onnx(model, example, io: ModelIO, opset: int):
    import onnx
    import torch

    batch = torch.export.Dim("batch", min=1, max=256)
    # the exporter logs optional-op registrations (torchvision absent) and deprecation notices
    # that say nothing about this model; real failures still raise
    with tempfile.TemporaryDirectory() as tmp, _quiet_exporter():
        path = Path(tmp) / "model.onnx"
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                    input_names=[io.input_name], output_names=[io.output_name],
                                    dynamic_shapes=({0: batch},), verbose=False)
        program.save(str(path))
        return onnx.load(str(path))


@contextlib.contextmanager
def _quiet_exporter():
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _simplify(graph):
    try:
        import onnxsim
    except ImportError:  # simplification is an optimization; ORT fuses the same patterns itself
        return graph
    simplified, ok = onnxsim.simplify(graph)
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified graph")
    return simplified


def _onnxsim_version() -> str | None:
    try:
        import onnxsim
        return getattr(onnxsim, "__version__", "unknown")
    except ImportError:
        return None


def check_parity(model, onnx_bytes: bytes, io: ModelIO) -> dict[str, float]:
    """Compare ONNX Runtime with torch on fixed inputs; a UserError when they differ too much."""
    import onnxruntime as ort
    import torch

    x = parity_inputs(io)
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {io.input_name: x})[0]
    codec = io.codec()
    logit_diff = float(np.abs(expected - got).max())
    point_diff = float(np.abs(codec.decode(expected)[0] - codec.decode(got)[0]).max())
    result = {"max_abs_logit_diff": logit_diff, "max_point_diff_px": point_diff,
              "logit_atol": LOGIT_ATOL, "point_atol_px": POINT_ATOL_PX}
    if logit_diff > LOGIT_ATOL or point_diff > POINT_ATOL_PX:
        raise UserError(f"ONNX Runtime disagrees with torch (max |logit diff| {logit_diff:.2e} > "
                        f"{LOGIT_ATOL} or landmark diff {point_diff:.3f} px > {POINT_ATOL_PX}); "
                        "nothing written")
    return result
