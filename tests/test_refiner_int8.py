"""INT8 refiners: patch calibration sets cut around a first stage's landmarks, and the refiner's
export gated on the whole cascade. Tiny synthetic models and data; real ONNX Runtime."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgeld.cli import cli
from edgeld.core.errors import UserError
from edgeld.core.files import sha256_file
from edgeld.core.manifest import Manifest
from edgeld.data import open_dataset
from edgeld.data.images import load_grayscale
from edgeld.export.calibration import build_calibration, load_calibration
from edgeld.export.lowered import export_lowered
from edgeld.load import open_detector
from edgeld.metrics import radial_errors_mm
from edgeld.runtime.patches import PatchSpec, crop_patches, reduce_image

from conftest import REAL_DATA, needs_real_data


@pytest.fixture(scope="module")
def refiner_onnx(refiner, tmp_path_factory):
    from edgeld.export.onnx import export_onnx

    path = tmp_path_factory.mktemp("refiner-onnx") / "refiner.onnx"
    export_onnx(refiner["checkpoint"], path)
    return path


@pytest.fixture(scope="module")
def patch_set(refiner_onnx, trained_tiny, tmp_path_factory):
    """A refiner's calibration set of 4 train images, cut around the tiny student's landmarks
    (a copy of it, so a test can take the first stage away)."""
    root = tmp_path_factory.mktemp("patch-cal")
    stage1 = root / "stage1.onnx"
    shutil.copy(trained_tiny["onnx"], stage1)
    shutil.copy(str(trained_tiny["onnx"]) + ".json", str(stage1) + ".json")
    out = root / "refiner-first4"
    build_calibration(trained_tiny["data"], "train", 4, out, Manifest.read(refiner_onnx).io,
                      "first", progress=False, stage1=str(stage1))
    return {"folder": out, "stage1": stage1}


def test_patch_set_holds_the_patches_the_cascade_feeds_its_refiner(patch_set, refiner_onnx,
                                                                   trained_tiny):
    manifest = json.loads((patch_set["folder"] / "manifest.json").read_text())
    assert manifest["stage1"] == {"name": str(patch_set["stage1"]), "kind": "onnx",
                                  "sha256": sha256_file(patch_set["stage1"])}
    assert manifest["preprocess"]["patch"]["size"] == 32
    assert manifest["preprocess"]["patch"]["factor"] == 1
    cal = load_calibration(patch_set["folder"])
    assert cal.tensors.shape == (4 * 3, 1, 32, 32) and cal.tensors.dtype == np.float32
    io = Manifest.read(refiner_onnx).io
    assert cal.matches(io) and not cal.matches(Manifest.read(trained_tiny["onnx"]).io)
    # independently: run the first stage, cut with the runtime's primitives, compare
    samples = {s.image_id: s for s in open_dataset(trained_tiny["data"]).split("train")}
    spec = PatchSpec(32, 1)
    stage1 = open_detector(str(trained_tiny["onnx"]))
    for n, entry in enumerate(manifest["images"]):
        image = load_grayscale(samples[entry["id"]].path)
        points = np.round(stage1.detect(image).landmarks_px.astype(np.float64), 3)
        assert np.array_equal(np.array(entry["stage1_points_px"]), points)
        expected = crop_patches(reduce_image(image, 1), spec.source_to_reduced(points), spec,
                                io.mean, io.std)
        assert np.array_equal(cal.tensors[3 * n:3 * n + 3], expected)


def test_patch_set_regenerates_identically_without_its_first_stage(patch_set, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(patch_set["folder"], folder)
    before = load_calibration(folder).tensors
    (folder / "tensors.npy").unlink()
    moved = tmp_path / "gone.onnx"  # the first stage is not needed to rebuild the tensors
    shutil.copy(patch_set["stage1"], moved)
    patch_set["stage1"].unlink()
    try:
        after = load_calibration(folder).tensors
    finally:
        shutil.move(moved, patch_set["stage1"])
    assert np.array_equal(before, after)


def test_a_patch_set_of_another_spacing_is_cut_at_the_training_scale(patch_set, refiner_onnx,
                                                                    trained_tiny, tmp_path):
    """The same films at twice the resolution, their dataset saying so: the refiner's patches
    are cut at its training scale, as the runtime cuts them (close to the original set's, far
    closer than patches cut from the finer films as they come), and regenerate the same."""
    from PIL import Image

    fine = tmp_path / "fine"
    shutil.copytree(trained_tiny["data"], fine)
    meta = json.loads((fine / "dataset.json").read_text())
    spacing = meta.get("pixel_spacing_mm", [0.1, 0.1])
    (fine / "dataset.json").write_text(json.dumps({**meta, "pixel_spacing_mm": [v / 2 for v in spacing]}))
    for sample in open_dataset(fine).split("train"):
        image = Image.open(sample.path)
        image.resize((image.width * 2, image.height * 2), Image.BILINEAR).save(sample.path)
    io = Manifest.read(refiner_onnx).io
    assert io.film_spacing_mm == tuple(spacing)
    out = tmp_path / "fine-first4"
    built = build_calibration(fine, "train", 4, out, io, "first", progress=False,
                              stage1=str(patch_set["stage1"])).tensors
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocess"]["patch"]["film_spacing_mm"] == spacing
    original = load_calibration(patch_set["folder"]).tensors
    samples = {s.image_id: s for s in open_dataset(fine).split("train")}
    as_they_come = np.concatenate([  # what the set held before: the finer films' own pixels
        crop_patches(reduce_image(load_grayscale(samples[e["id"]].path), 1),
                     np.array(e["stage1_points_px"]), PatchSpec(32, 1), io.mean, io.std)
        for e in manifest["images"]])
    assert np.abs(built - original).mean() < 0.5 * np.abs(as_they_come - original).mean()
    (out / "tensors.npy").unlink()
    assert np.array_equal(load_calibration(out).tensors, built)


def test_stage1_is_refused_where_it_cannot_work(refiner_onnx, trained_tiny, tmp_path):
    student_io = Manifest.read(trained_tiny["onnx"]).io
    refiner_io = Manifest.read(refiner_onnx).io
    data = trained_tiny["data"]
    with pytest.raises(UserError, match="--stage1 applies to a refiner"):
        build_calibration(data, "train", 2, tmp_path / "a", student_io, "first", progress=False,
                          stage1=str(trained_tiny["onnx"]))
    with pytest.raises(UserError, match="is a refiner"):
        build_calibration(data, "train", 2, tmp_path / "b", refiner_io, "first", progress=False,
                          stage1=str(refiner_onnx))
    with pytest.raises(UserError, match="other landmarks"):  # the default: isbi2015-student
        build_calibration(data, "train", 2, tmp_path / "c", refiner_io, "first", progress=False)
    assert not any(tmp_path.iterdir())


def test_a_whole_image_set_is_refused_for_a_refiner(refiner_onnx, trained_tiny, tmp_path):
    whole = tmp_path / "whole"
    build_calibration(trained_tiny["data"], "train", 2, whole,
                      Manifest.read(trained_tiny["onnx"]).io, "first", progress=False)
    with pytest.raises(UserError, match="another input"):
        export_lowered(str(refiner_onnx), tmp_path / "r.onnx", "int8", str(whole),
                       stage1=str(trained_tiny["onnx"]), progress=False)
    assert not (tmp_path / "r.onnx").exists()


@pytest.fixture(scope="module")
def int8_refiners(refiner_onnx, patch_set, trained_tiny, tmp_path_factory):
    out = {}
    for target in ("tensorrt", "cpu"):
        path = tmp_path_factory.mktemp("int8-refiner") / f"refiner.int8-{target}.onnx"
        out[target] = (path, export_lowered(str(refiner_onnx), path, "int8",
                                            str(patch_set["folder"]), target=target,
                                            data_dir=str(trained_tiny["data"]), progress=False))
    return out


def _cascade_mre(stage1, refiner, data, ids):
    dataset = open_dataset(data)
    samples = [s for s in dataset.split("train") if s.image_id in ids]
    detector = open_detector(stage1, refiner=refiner)
    points = np.stack([detector.detect(load_grayscale(s.path)).landmarks_px for s in samples])
    refs = np.stack([s.reference(dataset.default_reference) for s in samples])
    spacing = np.array([s.spacing_mm or (1.0, 1.0) for s in samples])
    return float(radial_errors_mm(points, refs, spacing).mean())


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_int8_refiner_is_gated_on_the_cascade(int8_refiners, target, refiner_onnx, patch_set,
                                              trained_tiny):
    path, manifest = int8_refiners[target]
    gate = manifest.section("gate")
    stage1 = patch_set["stage1"]  # the set's own first stage, as no --stage1 was given
    assert gate["cascade"] == {"stage1": str(stage1), "stage1_sha256": sha256_file(stage1),
                               "stage1_precision": "fp32"}
    validation = Manifest.read(trained_tiny["onnx"]).source["validation"]["images"]
    chosen = [e["id"] for e in json.loads((patch_set["folder"] / "manifest.json").read_text())["images"]]
    kept = [v for v in validation if v not in chosen]
    assert gate["excluded_calibration_images"] == [v for v in validation if v in chosen]
    assert gate["n_images"] == len(kept) > 0
    # the gate's figures are the cascade's, measured again here independently
    assert gate["fp32_mre_mm"] == pytest.approx(
        _cascade_mre(str(stage1), str(refiner_onnx), trained_tiny["data"], kept), abs=1e-9)
    assert gate["mre_mm"] == pytest.approx(
        _cascade_mre(str(stage1), str(path), trained_tiny["data"], kept), abs=1e-9)
    assert gate["mre_increase_mm"] <= gate["max_mre_increase_mm"] == 0.05
    lowering = manifest.section("lowering")
    assert lowering["target"] == target and manifest.artifact.precision == "int8"
    assert lowering["calibration"]["count"] == 12 and lowering["calibration"]["images"] == 4
    assert manifest.io.patch_size == 32  # still a refiner: it runs after a first stage


def test_int8_refiner_gate_leaves_out_calibration_images(refiner_onnx, trained_tiny, tmp_path):
    """A refiner set holding 2 of the first stage's 3 validation images: the gate keeps 1."""
    validation = Manifest.read(trained_tiny["onnx"]).source["validation"]["images"]
    data = tmp_path / "copy"
    shutil.copytree(trained_tiny["data"], data)
    (data / "chosen.txt").write_text("\n".join(validation[:2]) + "\n")
    cal = tmp_path / "cal"
    build_calibration(data, "chosen", 2, cal, Manifest.read(refiner_onnx).io, "first",
                      progress=False, stage1=str(trained_tiny["onnx"]))
    lines = []
    manifest = export_lowered(str(refiner_onnx), tmp_path / "r.onnx", "int8", str(cal),
                              target="cpu", data_dir=str(trained_tiny["data"]), progress=False,
                              echo=lines.append)
    gate = manifest.section("gate")
    assert gate["excluded_calibration_images"] == validation[:2] and gate["n_images"] == 1
    assert any("cascade after" in line for line in lines)


def test_cli_calibrates_and_exports_an_int8_refiner(refiner_onnx, trained_tiny, tmp_path):
    runner = CliRunner()
    cal = tmp_path / "cal"
    res = runner.invoke(cli, ["calibrate", "--data", str(trained_tiny["data"]), "--split", "train",
                              "--count", "3", "--method", "first", "--for", str(refiner_onnx),
                              "--stage1", str(trained_tiny["onnx"]), "--out", str(cal)])
    assert res.exit_code == 0, res.output
    assert "9 patches around" in res.output
    out = tmp_path / "r.int8.onnx"
    res = runner.invoke(cli, ["export", str(refiner_onnx), "--to", "int8", "--calibration",
                              str(cal), "--target", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["evaluate", str(trained_tiny["onnx"]), "--refiner", str(out),
                              "--data", str(trained_tiny["data"]), "--split", "test1"])
    assert res.exit_code == 0 and "r.int8.onnx" in res.output, res.output


def test_cli_model_is_the_old_spelling_of_for(trained_tiny, tmp_path):
    runner = CliRunner()
    made = {}
    for flag in ("--for", "--model"):
        out = tmp_path / flag.strip("-")
        res = runner.invoke(cli, ["calibrate", "--data", str(trained_tiny["data"]), "--split",
                                  "train", "--count", "2", "--method", "first", flag,
                                  str(trained_tiny["onnx"]), "--out", str(out)])
        assert res.exit_code == 0, res.output
        made[flag] = json.loads((out / "manifest.json").read_text())
    assert made["--for"]["images"] == made["--model"]["images"]
    assert made["--for"]["preprocess"] == made["--model"]["preprocess"]
    assert "--model" not in runner.invoke(cli, ["calibrate", "--help"]).output


@needs_real_data
def test_committed_refiner_set_regenerates_to_its_recorded_tensors(tmp_path):
    """calibration/isbi2015-refiner-train-diverse64 (manifest only in git): the tensors rebuilt
    from the dataset hash to what the manifest recorded when the set was cut."""
    from pathlib import Path

    committed = (Path(__file__).resolve().parents[1] / "calibration" /
                 "isbi2015-refiner-train-diverse64" / "manifest.json")
    manifest = json.loads(committed.read_text())
    assert manifest["stage1"]["name"] == "isbi2015-student"
    assert manifest["preprocess"]["patch"] == {**manifest["preprocess"]["patch"], "size": 64,
                                               "factor": 2}
    (tmp_path / "manifest.json").write_text(committed.read_text())
    cal = load_calibration(tmp_path, data_dir=REAL_DATA, progress=False)
    assert cal.tensors.shape == (64 * 19, 1, 64, 64)
    assert sha256_file(tmp_path / "tensors.npy") == manifest["tensors"]["sha256"]
