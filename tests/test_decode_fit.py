"""`edgeld decode fit`: the peak refinement chosen on a model's own validation films."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import REAL_DATA, needs_real_data, validated_run
from edgeld.core.contract import ModelIO
from edgeld.decode_fit import RADII, fit_radius
from edgeld.model_ref import checkpoint_metadata, resolve_model


def test_fit_picks_the_lowest_validation_error_and_writes_only_the_radius(trained_tiny, tmp_path):
    ref = resolve_model(str(trained_tiny["checkpoint"]))
    fit = fit_radius(ref, None, str(trained_tiny["data"]), progress=False)
    assert set(fit.mre_mm) == set(RADII)
    assert fit.mre_mm[fit.radius] == min(fit.mre_mm.values())
    assert "3 validation films" in fit.fitted_on
    out = tmp_path / "fitted.safetensors"
    done = subprocess.run([sys.executable, "-m", "edgeld", "decode", "fit", str(ref.path), "--data",
                           str(trained_tiny["data"]), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "<- chosen" in done.stdout
    before = ModelIO.from_dict(checkpoint_metadata(ref.path)["io"])
    after = ModelIO.from_dict(checkpoint_metadata(out)["io"])
    assert after.heatmap.softargmax_radius == fit.radius
    # everything else in the contract is as it was
    assert after.to_dict() | {"softargmax_radius": 0} == before.to_dict() | {"softargmax_radius": 0}


def test_fit_of_a_refiner_changes_the_cascade_as_measured(trained_tiny, refiner, tmp_path):
    from edgeld.load import open_detector

    ref = resolve_model(str(trained_tiny["checkpoint"]))
    second = resolve_model(refiner["checkpoint"])
    fit = fit_radius(ref, second, str(trained_tiny["data"]), progress=False)
    out = tmp_path / "refiner.safetensors"
    from edgeld.decode_fit import attach_radius, candidate_points
    from edgeld.data import load_grayscale

    attach_radius(second, out, fit.radius)
    image = load_grayscale(sorted((trained_tiny["data"] / "images").glob("*.png"))[0])
    with open_detector(ref, refiner=str(out)) as detector:
        # the refitted cascade gives the points the fit measured for its radius
        assert np.allclose(detector.detect(image).landmarks_px,
                           candidate_points(detector, image)[fit.radius], atol=1e-9)


def test_fit_refuses_an_exported_artifact_in_one_line(tiny_onnx):
    done = subprocess.run([sys.executable, "-m", "edgeld", "decode", "fit", str(tiny_onnx),
                           "--data", "nowhere", "--out", "x.safetensors"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "fit the checkpoint it came from" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_contract_without_the_radius_decodes_by_the_parabola():
    from edgeld.models.registry import builtin_path

    io = checkpoint_metadata(builtin_path("isbi2015-student"))["io"]
    legacy = {k: v for k, v in io.items() if k != "softargmax_radius"}
    assert ModelIO.from_dict(legacy).codec().softargmax_radius == 0


@needs_real_data
def test_fit_cli_reproduces_the_shipped_student(tmp_path):
    """The shipped student trained on every image: its radius is chosen on the validated run's
    films and written into it (`--into`), and that command reproduces the shipped file."""
    from edgeld.models.registry import builtin_path

    validated_run(tmp_path)
    out = tmp_path / "student.safetensors"
    subprocess.run([sys.executable, "-m", "edgeld", "decode", "fit",
                    "runs/validated/student.safetensors", "--into", "isbi2015-student",
                    "--data", str(REAL_DATA), "--out", str(out)],
                   check=True, capture_output=True, timeout=600, cwd=tmp_path)
    assert out.read_bytes() == builtin_path("isbi2015-student").read_bytes()


def test_a_cascade_is_fitted_only_on_films_neither_stage_trained_on(shared_dataset):
    from types import SimpleNamespace

    import pytest

    from edgeld.core.errors import UserError
    from edgeld.evaluate import validation_samples

    def model(*ids):
        return SimpleNamespace(metadata={"training": {"val_images": list(ids)}})

    first, second = model("001.png", "002.png", "003.png"), model("002.png", "003.png", "009.png")
    _, samples = validation_samples(first, str(shared_dataset), "train", "x", also=second)
    assert [s.image_id for s in samples] == ["002.png", "003.png"]
    # a second stage that records nothing (an older checkpoint) leaves the first stage's films
    _, samples = validation_samples(first, str(shared_dataset), "train", "x", also=model())
    assert len(samples) == 3
    with pytest.raises(UserError, match="no common validation films"):
        validation_samples(first, str(shared_dataset), "train", "x", also=model("010.png"))


def test_fit_carried_into_a_run_on_every_image(trained_tiny, refiner, tmp_path):
    """`--into`: a run trained on every image has no film to fit on; its validated run's films
    choose, and the choice lands in a copy of the other run (its weights, its contract)."""
    from safetensors.numpy import load_file

    from edgeld.config import InputSpec, TrainSpec
    from edgeld.train.trainer import train

    every = train(str(trained_tiny["data"]), str(tmp_path / "every"),
                  spec=TrainSpec(epochs=1, batch_size=4, val_count=0, threads=1),
                  input_spec=InputSpec(height=64, width=64), progress=False)["checkpoint"]
    ref = resolve_model(str(trained_tiny["checkpoint"]))
    fit = fit_radius(ref, None, str(trained_tiny["data"]), progress=False)
    out = tmp_path / "every-fitted.safetensors"
    args = [sys.executable, "-m", "edgeld", "decode", "fit", str(ref.path), "--data",
            str(trained_tiny["data"]), "--out", str(out)]
    done = subprocess.run([*args, "--into", str(every)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = ModelIO.from_dict(checkpoint_metadata(out)["io"])
    assert after.heatmap.softargmax_radius == fit.radius
    assert checkpoint_metadata(out)["training"]["val_images"] == []  # the other run's metadata
    theirs, mine = load_file(str(every)), load_file(str(out))
    assert theirs.keys() == mine.keys() and all(np.array_equal(theirs[k], mine[k]) for k in mine)
    # a checkpoint of another kind (a refiner for a first stage) is no such run
    refused = subprocess.run([*args[:-1], str(tmp_path / "x.safetensors"), "--into",
                              str(refiner["checkpoint"])], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "same recipe" in refused.stderr
    assert not (tmp_path / "x.safetensors").exists()
