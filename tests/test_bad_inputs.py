"""Bad input through the real CLI: exit 2, one line saying what is wrong, no traceback, nothing
half-written (DESIGN, "Command-line contract"). Odd but valid X-rays (16-bit, colour, palette)
are handled, not refused.

Each case builds its broken input in its own folder and returns the command line; the test then
checks that folder for any file the failed command left behind (including hidden temp files).
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeld.cli import cli
from edgeld.core.files import atomic_write_json, sha256_file
from edgeld.core.manifest import MANIFEST_FORMAT, manifest_path


@dataclass
class Inputs:
    tmp: Path         # the case's own folder: inputs are made here, and leftovers are looked for here
    onnx: Path        # the tiny exported model (session fixture: never modified)
    checkpoint: Path  # its checkpoint (session fixture)
    data: Path        # the synthetic dataset (session fixture)

    def image(self) -> Path:
        return sorted((self.data / "images").glob("*.png"))[0]

    def dataset(self) -> Path:
        """A private copy of the dataset, to break."""
        return Path(shutil.copytree(self.data, self.tmp / "ds"))

    def onnx_copy(self, name: str = "m.onnx") -> Path:
        """A private copy of the ONNX artifact and its manifest, to break."""
        dst = self.tmp / name
        shutil.copy(self.onnx, dst)
        shutil.copy(manifest_path(self.onnx), manifest_path(dst))
        return dst

    def out(self, name: str) -> str:
        return str(self.tmp / "out" / name)

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path


# ---------------------------------------------------------------- broken files


def sample_array(inp: Inputs) -> np.ndarray:
    return np.asarray(Image.open(inp.image()))


def encoded(inp: Inputs, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.open(inp.image()).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height 8-bit gray pixels, with a few bytes of data:
    decoding it would allocate width * height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def rehash(artifact: Path) -> None:
    """Make the manifest's sha256 match the (modified) artifact, so the loader gets past the hash."""
    manifest = json.loads(manifest_path(artifact).read_text())
    manifest["artifact"]["sha256"] = sha256_file(artifact)
    atomic_write_json(manifest_path(artifact), manifest)


def edit_manifest(artifact: Path, edit: Callable[[dict], None]) -> None:
    manifest = json.loads(manifest_path(artifact).read_text())
    edit(manifest)
    manifest_path(artifact).write_text(json.dumps(manifest))


def other_onnx(inp: Inputs, name: str, inputs: list[tuple[str, list]],
               outputs: list[tuple[str, list]]) -> Path:
    """A valid ONNX of some other model (Identity / Sigmoid nodes), with an edgeld manifest copied
    from the tiny model, hash matching: only the graph's signature can tell it apart."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Identity" if k == 0 else "Sigmoid", [inputs[0][0]], [out[0]])
             for k, out in enumerate(outputs)]
    graph = helper.make_graph(
        nodes, "other",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n, shape in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = inp.onnx_copy(name)
    onnx.save(model, str(path))
    rehash(path)
    return path


def engine_with_manifest(inp: Inputs, name: str = "m.engine") -> Path:
    """A TensorRT engine file (bytes TensorRT alone could judge) with a well-formed engine manifest."""
    engine = inp.file(name, b"\x00ftrt" + bytes(range(256)) * 4)
    onnx_manifest = json.loads(manifest_path(inp.onnx).read_text())
    atomic_write_json(manifest_path(engine), {
        "format": MANIFEST_FORMAT,
        "artifact": {"file": engine.name, "sha256": sha256_file(engine), "kind": "engine",
                     "bytes": engine.stat().st_size, "precision": "fp32"},
        "io": onnx_manifest["io"],
        "source": {"onnx": inp.onnx.name},
        "tensorrt": {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"}})
    return engine


def csv_edit(inp: Inputs, edit: Callable[[list[list[str]]], None]) -> Path:
    """The dataset copy with its senior annotation table edited (rows of cells, header first)."""
    ds = inp.dataset()
    path = ds / "annotations" / "senior.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    edit(rows)
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return ds


# rows of the senior table: header, 12 training images (001-012), then test1 (013-016)
TEST1_ROW = 14  # 014.png


def set_cell(row: int, col: int, value: str) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        rows[row][col] = value
    return edit


def drop_column(col: int) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        for r in rows:
            del r[col]
    return edit


def two_landmark_dataset(inp: Inputs) -> Path:
    """A valid dataset with 2 landmarks (the model predicts 3)."""
    ds = inp.dataset()
    meta = json.loads((ds / "dataset.json").read_text())
    meta["landmarks"] = meta["landmarks"][:2]
    (ds / "dataset.json").write_text(json.dumps(meta))
    for ref in ("senior", "junior"):
        path = ds / "annotations" / f"{ref}.csv"
        rows = [line.split(",") for line in path.read_text().splitlines()]
        drop_column(6)(rows)  # corner_y, then corner_x
        drop_column(5)(rows)
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    return ds


def checkpoint_with_random_weights(inp: Inputs) -> Path:
    """edgeld metadata (a real description) over tensors of another shape."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(inp.checkpoint), framework="numpy") as fh:
        meta = fh.metadata()
    path = inp.tmp / "wrong.safetensors"
    save_file({"stem.weight": np.random.default_rng(0).random((3, 3), dtype=np.float32)}, str(path),
              metadata=meta)
    return path


def random_safetensors(inp: Inputs) -> Path:
    from safetensors.numpy import save_file

    path = inp.tmp / "random.safetensors"
    rng = np.random.default_rng(0)
    save_file({"a": rng.random((4, 4), dtype=np.float32), "b": rng.random(7, dtype=np.float32)},
              str(path))
    return path


def truncated(path: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def predict(model, image, inp: Inputs) -> list:
    return ["predict", model, image, "--json", inp.out("p.json")]


def evaluate(ds, inp: Inputs, split: str = "test1") -> list:
    return ["evaluate", inp.onnx, "--data", ds, "--split", split, "--json", inp.out("e.json")]


# ---------------------------------------------------------------- the corpus
# id -> (command line from the case's Inputs, words the one-line message must contain)

Case = Callable[[Inputs], list]
BAD: dict[str, tuple[Case, str]] = {
    # images
    "image-missing": (lambda i: predict(i.onnx, i.tmp / "nope.png", i), "not found"),
    "image-empty-file": (lambda i: predict(i.onnx, i.file("e.png", b""), i), "empty"),
    "image-truncated-png": (lambda i: predict(i.onnx, i.file("t.png", encoded(i, "PNG")[:600]), i),
                            "truncated or corrupt"),
    "image-truncated-jpeg": (lambda i: predict(i.onnx, i.file("t.jpg", encoded(i, "JPEG")[:900]), i),
                             "truncated or corrupt"),
    "image-corrupt-bytes-png-suffix": (
        lambda i: predict(i.onnx, i.file("c.png", bytes(range(256)) * 8), i), "not a readable image"),
    "image-text-jpg-suffix": (lambda i: predict(i.onnx, i.file("c.jpg", "not an x-ray\n"), i),
                              "not a readable image"),
    # a folder is read as the images in it (see test_user_paths); one with none is refused
    "image-folder-without-images": (
        lambda i: predict(i.onnx, i.file("notes/readme.txt", "no films here").parent, i),
        "folder with no image files"),
    "image-header-60000x60000": (
        lambda i: predict(i.onnx, i.file("big.png", png_header_only(60000, 60000)), i), "too large"),
    # over Pillow's limit but under twice it, where Pillow only warns and would decode 225 MB
    "image-header-15000x15000": (
        lambda i: predict(i.onnx, i.file("big.png", png_header_only(15000, 15000)), i), "too large"),
    "image-second-of-two-missing": (
        lambda i: ["predict", i.onnx, i.image(), i.tmp / "nope.png", "--json", i.out("p.json"),
                   "--overlay", i.out("ov")], "not found"),
    # datasets
    "dataset-folder-missing": (lambda i: evaluate(i.tmp / "nope", i), "not found"),
    "dataset-empty-folder": (lambda i: evaluate(i.file("empty/.keep", "").parent, i),
                             "not a dataset"),
    "dataset-json-malformed": (
        lambda i: evaluate(_write(i.dataset(), "dataset.json", '{"landmarks": ["a",'), i),
        "dataset.json"),
    "dataset-json-no-landmarks": (
        lambda i: evaluate(_write(i.dataset(), "dataset.json", '{"landmarks": []}'), i),
        "no landmarks"),
    "dataset-json-landmarks-not-a-list": (
        lambda i: evaluate(_write(i.dataset(), "dataset.json", '{"landmarks": 5}'), i),
        "dataset.json"),
    "dataset-fewer-landmarks-than-model": (lambda i: evaluate(two_landmark_dataset(i), i),
                                           "landmarks"),
    "csv-wrong-landmark-count": (lambda i: evaluate(csv_edit(i, lambda rows: rows[TEST1_ROW].pop()), i),
                                 "expected 6"),
    "csv-nan": (lambda i: evaluate(csv_edit(i, set_cell(TEST1_ROW, 3, "nan")), i), "finite"),
    "csv-text-in-number-column": (lambda i: evaluate(csv_edit(i, set_cell(TEST1_ROW, 2, "abc")), i),
                                  "must be numbers"),
    "csv-missing-column": (lambda i: evaluate(csv_edit(i, drop_column(6)), i), "header"),
    "csv-empty-file": (lambda i: evaluate(_write(i.dataset(), "annotations/senior.csv", ""), i),
                       "header"),
    "split-file-empty": (lambda i: evaluate(_write(i.dataset(), "test1.txt", ""), i), "empty"),
    "split-unknown": (lambda i: evaluate(i.data, i, split="test9"), "not found"),
    "split-names-missing-image": (
        lambda i: evaluate(_then(i.dataset(), lambda ds: (ds / "images" / "014.png").unlink()), i),
        "not found"),
    "split-names-unknown-image": (
        lambda i: evaluate(_write(i.dataset(), "test1.txt", "013.png\n999.png\n"), i), "999.png"),
    "split-image-without-annotation": (
        lambda i: evaluate(_add_unannotated(i.dataset()), i), "annotation"),
    "split-image-corrupt": (
        lambda i: evaluate(_write(i.dataset(), "images/014.png", encoded(i, "PNG")[:600]), i),
        "truncated or corrupt"),
    # checkpoints and built-in names
    "checkpoint-missing": (lambda i: predict(i.tmp / "nope.safetensors", i.image(), i), "not found"),
    "checkpoint-empty-file": (lambda i: predict(i.file("e.safetensors", b""), i.image(), i),
                              "safetensors"),
    "checkpoint-truncated": (
        lambda i: predict(truncated(i.checkpoint, i.tmp / "t.safetensors"), i.image(), i),
        "safetensors"),
    "checkpoint-random-tensors": (lambda i: predict(random_safetensors(i), i.image(), i),
                                  "not an edgeld checkpoint"),
    "checkpoint-weights-do-not-match": (lambda i: predict(checkpoint_with_random_weights(i),
                                                          i.image(), i), "do not match"),
    "model-unknown-builtin": (lambda i: predict("isbi2099-student", i.image(), i), "unknown model"),
    "model-unknown-suffix": (lambda i: predict(i.file("m.pt", b"\0" * 64), i.image(), i),
                             "cannot tell"),
    # ONNX artifacts and manifests
    "onnx-missing": (lambda i: predict(i.tmp / "nope.onnx", i.image(), i), "not found"),
    "onnx-truncated": (lambda i: predict(truncated(i.onnx_copy(), i.tmp / "m.onnx"), i.image(), i),
                       "sha256"),
    "onnx-truncated-manifest-rehashed": (
        lambda i: predict(_then(truncated(i.onnx_copy(), i.tmp / "m.onnx"), rehash), i.image(), i),
        "cannot load"),
    "onnx-sha256-mismatch": (
        lambda i: predict(_then(i.onnx_copy(), lambda p: edit_manifest(
            p, lambda m: m["artifact"].update(sha256="0" * 64))), i.image(), i), "sha256"),
    "onnx-manifest-missing": (
        lambda i: predict(_then(i.onnx_copy(), lambda p: manifest_path(p).unlink()), i.image(), i),
        "no manifest"),
    "onnx-manifest-malformed": (
        lambda i: predict(_then(i.onnx_copy(), lambda p: manifest_path(p).write_text("{oops")),
                          i.image(), i), "not valid JSON"),
    "onnx-manifest-not-edgeld": (
        lambda i: predict(_then(i.onnx_copy(), lambda p: manifest_path(p).write_text('{"a": 1}')),
                          i.image(), i), "not an edgeld manifest"),
    "onnx-manifest-without-io": (
        lambda i: predict(_then(i.onnx_copy(), lambda p: edit_manifest(p, lambda m: m.pop("io"))),
                          i.image(), i), "io"),
    "onnx-other-model-3-channel-input": (
        lambda i: predict(other_onnx(i, "o.onnx", [("image", ["N", 3, 32, 32])],
                                     [("heatmaps", ["N", 3, 32, 32])]), i.image(), i), "input"),
    "onnx-other-model-two-outputs": (
        lambda i: predict(other_onnx(i, "o.onnx", [("image", ["N", 1, 64, 64])],
                                     [("heatmaps", ["N", 1, 64, 64]), ("extra", ["N", 1, 64, 64])]),
                          i.image(), i), "output"),
    "onnx-other-model-wrong-heatmaps": (
        lambda i: predict(other_onnx(i, "o.onnx", [("image", ["N", 1, 64, 64])],
                                     [("heatmaps", ["N", 1, 64, 64])]), i.image(), i), "output"),
    "info-onnx-manifest-malformed": (
        lambda i: ["info", _then(i.onnx_copy(), lambda p: manifest_path(p).write_text("[")),
                   "--json", i.out("i.json")], "not valid JSON"),
    # TensorRT without TensorRT
    "engine-without-tensorrt": (lambda i: predict(engine_with_manifest(i), i.image(), i),
                                "edgeld[trt]"),
    "plan-file-suffix": (lambda i: predict(i.file("m.plan", b"\0" * 64), i.image(), i),
                         "cannot tell"),
    "export-engine-without-tensorrt": (
        lambda i: ["export", i.onnx, "--to", "engine", "--out", i.out("m.engine")], "edgeld[trt]"),
    # export inputs
    "export-from-truncated-checkpoint": (
        lambda i: ["export", truncated(i.checkpoint, i.tmp / "t.safetensors"), "--to", "onnx",
                   "--out", i.out("m.onnx")], "safetensors"),
    "export-out-wrong-suffix": (
        lambda i: ["export", i.checkpoint, "--to", "onnx", "--out", i.out("m.txt")], ".onnx"),
    "export-int8-without-calibration": (
        lambda i: ["export", i.onnx, "--to", "int8", "--out", i.out("m.onnx")], "calibration"),
    "export-int8-calibration-missing": (
        lambda i: ["export", i.onnx, "--to", "int8", "--calibration", i.tmp / "nocal",
                   "--data", i.data, "--out", i.out("m.onnx")], "no calibration set"),
    "export-batch-sizes-garbage": (
        lambda i: ["export", i.onnx, "--to", "engine", "--batch-sizes", "a,b", "--out",
                   i.out("m.engine")], "--batch-sizes"),
    "report-results-malformed": (
        lambda i: ["report", i.file("r.json", '{"records": 3'), "--out", i.out("rep")],
        "results.json"),
    "report-results-missing": (
        lambda i: ["report", i.tmp / "r.json", "--out", i.out("rep")], "not found"),
    # option values
    "train-negative-threads": (
        lambda i: ["train", "--data", i.data, "--out", i.out("run"), "--threads", "-1"], "--threads"),
    "train-input-size-garbage": (
        lambda i: ["train", "--data", i.data, "--out", i.out("run"), "--input-size", "big"],
        "--input-size"),
    "train-input-size-not-multiple-of-32": (
        lambda i: ["train", "--data", i.data, "--out", i.out("run"), "--input-size", "65x64"],
        "multiples of 32"),
    "train-unknown-role": (
        lambda i: ["train", "--data", i.data, "--out", i.out("run"), "--role", "oracle"], "--role"),
    "benchmark-negative-threads": (
        lambda i: ["benchmark", i.onnx, "--threads", "-2", "--out", i.out("b")], "--threads"),
    "benchmark-unknown-backend": (
        lambda i: ["benchmark", i.onnx, "--backend", "tpu", "--out", i.out("b")], "--backend"),
    "benchmark-data-without-split": (
        lambda i: ["benchmark", i.onnx, "--data", i.data, "--out", i.out("b")], "--split"),
    "export-unknown-format": (
        lambda i: ["export", i.onnx, "--to", "tflite", "--out", i.out("m.tflite")], "--to"),
    "evaluate-unknown-reference": (
        lambda i: [*evaluate(i.data, i), "--reference", "intern"], "--reference"),
    "predict-negative-spacing": (lambda i: [*predict(i.onnx, i.image(), i), "--spacing", "-0.1"],
                                 "--spacing"),
    "calibrate-count-zero": (
        lambda i: ["calibrate", "--data", i.data, "--split", "train", "--count", "0", "--out",
                   i.out("cal")], "--count"),
    "calibrate-count-larger-than-split": (
        lambda i: ["calibrate", "--data", i.data, "--split", "test1", "--count", "50",
                   "--model", i.onnx, "--out", i.out("cal")], "--count"),
    "calibrate-stage1-for-a-first-stage": (
        lambda i: ["calibrate", "--data", i.data, "--split", "train", "--count", "2", "--for",
                   i.onnx, "--stage1", i.onnx, "--out", i.out("cal")], "--stage1 applies"),
    "calibrate-for-and-its-old-spelling": (
        lambda i: ["calibrate", "--data", i.data, "--split", "train", "--count", "2", "--for",
                   i.onnx, "--model", i.onnx, "--out", i.out("cal")], "give --for MODEL only"),
    "export-stage1-for-a-first-stage": (
        lambda i: ["export", i.onnx, "--to", "fp16", "--data", i.data, "--split", "test1",
                   "--stage1", i.onnx, "--out", i.out("m.onnx")], "refiner only"),
    "export-stage1-with-to-onnx": (
        lambda i: ["export", i.checkpoint, "--to", "onnx", "--stage1", i.onnx,
                   "--out", i.out("m.onnx")], "--stage1 applies"),
    "unknown-command": (lambda i: ["frobnicate", i.onnx], "frobnicate"),
    "missing-argument": (lambda i: ["predict", i.onnx], "IMAGE"),
    # outputs that cannot be written
    "predict-overlay-folder-is-a-file": (
        lambda i: [*predict(i.onnx, i.image(), i), "--overlay", i.file("taken", "x")], "taken"),
    "predict-json-is-a-folder": (
        lambda i: ["predict", i.onnx, i.image(), "--json", i.file("jdir/.keep", "").parent], "jdir"),
    "predict-json-parent-is-a-file": (
        lambda i: ["predict", i.onnx, i.image(), "--json", i.file("taken", "x") / "p.json"], "taken"),
    "evaluate-json-parent-is-a-file": (
        lambda i: ["evaluate", i.onnx, "--data", i.data, "--split", "test1", "--json",
                   i.file("taken", "x") / "e.json"], "taken"),
    "info-json-parent-is-a-file": (
        lambda i: ["info", i.onnx, "--json", i.file("taken", "x") / "i.json"], "taken"),
    "benchmark-out-is-a-file": (
        lambda i: ["benchmark", i.onnx, "--seconds", "0.1", "--out", i.file("taken", "x")], "taken"),
    "calibrate-out-is-a-file": (
        lambda i: ["calibrate", "--data", i.data, "--split", "test1", "--count", "2", "--for",
                   i.onnx, "--method", "first", "--out", i.file("taken", "x")], "taken"),
    "train-out-is-a-file": (
        lambda i: ["train", "--data", i.data, "--out", i.file("taken", "x"), "--epochs", "1",
                   "--input-size", "64x64", "--val-count", "3", "--threads", "1"], "taken"),
    "export-fp16-out-parent-is-a-file": (
        lambda i: ["export", i.onnx, "--to", "fp16", "--data", i.data, "--split", "test1",
                   "--out", i.file("taken", "x") / "m.onnx"], "taken"),
    "export-out-parent-is-a-file": (
        lambda i: ["export", i.checkpoint, "--to", "onnx", "--out", i.file("taken", "x") / "m.onnx"],
        "taken"),
}

# odd but valid X-rays: handled like any other (exit 0, every landmark found)
GOOD_IMAGES: dict[str, Callable[[np.ndarray], Image.Image]] = {
    "png-16-bit": lambda a: Image.fromarray(a.astype(np.uint16) * 257),
    "png-rgb": lambda a: Image.fromarray(np.stack([a] * 3, -1)),
    "png-rgba": lambda a: Image.fromarray(np.stack([a] * 3 + [np.full_like(a, 200)], -1)),
    "png-palette": lambda a: Image.fromarray(a).convert("P"),
    "png-gray-alpha": lambda a: Image.fromarray(a).convert("LA"),
    "png-1-bit": lambda a: Image.fromarray(a).convert("1"),
    "tiff-float32": lambda a: Image.fromarray(a.astype(np.float32) / 255.0),
}


def _write(root: Path, name: str, data: str | bytes) -> Path:
    path = root / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def _then(path: Path, action: Callable[[Path], object]) -> Path:
    action(path)
    return path


def _add_unannotated(ds: Path) -> Path:
    shutil.copy(ds / "images" / "013.png", ds / "images" / "900.png")
    (ds / "test1.txt").write_text("013.png\n900.png\n")
    return ds


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def inputs(tmp_path, tiny_onnx, tiny_checkpoint, shared_dataset) -> Inputs:
    return Inputs(tmp_path, tiny_onnx, tiny_checkpoint, shared_dataset)


def _assert_one_line(text: str, needle: str) -> None:
    # what a terminal shows: a progress bar that was running when the error came is redrawn over
    # with "\r" (tqdm, leave=False), so only the text after a line's last "\r" remains
    lines = [ln.rsplit("\r", 1)[-1] for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert lines[0].startswith("error: "), lines[0]
    assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    assert "Traceback" not in text


@pytest.mark.parametrize("case, needle", list(BAD.values()), ids=list(BAD))
def test_bad_input_exits_2_with_one_line(case: Case, needle: str, inputs: Inputs) -> None:
    args = [str(a) for a in case(inputs)]
    before = _files(inputs.tmp)
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 2, result.output
    assert result.stdout == "", result.stdout  # nothing reported as done
    _assert_one_line(result.stderr, needle)
    left = _files(inputs.tmp) - before
    assert not left, f"left behind: {sorted(map(str, left))}"


@pytest.mark.parametrize("make", list(GOOD_IMAGES.values()), ids=list(GOOD_IMAGES))
def test_odd_but_valid_images_are_handled(make, inputs: Inputs) -> None:
    img = make(sample_array(inputs))
    path = inputs.tmp / ("x.tif" if img.mode == "F" else "x.png")
    img.save(path)
    out = inputs.tmp / "p.json"
    result = CliRunner().invoke(cli, ["predict", str(inputs.onnx), str(path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    assert len(record["landmarks"]) == 3
    assert all(np.isfinite([lm["x_px"], lm["y_px"], lm["confidence"]]).all()
               for lm in record["landmarks"])


@pytest.mark.parametrize("args, needle", [
    (lambda i: ["predict", i.onnx, i.tmp / "nope.png", "--json", i.out("p.json")], "not found"),
    (lambda i: ["train", "--data", i.data, "--out", i.out("run"), "--threads", "-1"], "--threads"),
], ids=["process-image-missing", "process-negative-threads"])
def test_bad_input_in_a_real_process(args, needle: str, inputs: Inputs) -> None:
    """`python -m edgeld`: the real entry point, exit status and stderr of a separate process."""
    before = _files(inputs.tmp)
    proc = subprocess.run([sys.executable, "-m", "edgeld", *map(str, args(inputs))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    _assert_one_line(proc.stderr, needle)
    assert _files(inputs.tmp) == before
