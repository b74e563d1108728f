"""The core's model contract and manifest: round trips, older artifacts, the optional entries."""
import json

import numpy as np
import pytest

from edgeld.core.codec import SoftmaxHeatmapCodec
from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
from edgeld.core.errors import UserError
from edgeld.core.files import atomic_write_bytes, sha256_file
from edgeld.core.manifest import MANIFEST_FORMAT, ArtifactEntry, Manifest, manifest_path
from edgeld.runtime.orientation import fit_reference

# a real reference's serialized form (runtime/orientation.py), from a tiny asymmetric "film"
ORIENTATION = fit_reference([np.tile(np.linspace(0, 1, 48, dtype=np.float32), (64, 1))],
                            64, 48, 0.5, 0.25, size=8).to_dict()
IO = ModelIO(InputSpec(64, 48, 0.5, 0.25), HeatmapSpec(4, 1.5), ("a", "b"))
# the "io" entry every checkpoint and manifest carried before the contract had optional entries
V1_IO = {"input_height": 64, "input_width": 48, "mean": 0.5, "std": 0.25, "heatmap_stride": 4,
         "heatmap_sigma": 1.5, "landmarks": ["a", "b"], "input_name": "image",
         "output_name": "heatmaps", "patch_size": 0, "patch_factor": 0}


def test_contract_round_trip_and_codec():
    io = ModelIO(IO.input, IO.heatmap, IO.landmarks, orientation=ORIENTATION)
    assert ModelIO.from_dict(json.loads(json.dumps(io.to_dict()))) == io
    assert io.codec() == SoftmaxHeatmapCodec((64, 48), 4, 1.5)
    assert (io.input_height, io.input_width, io.heatmap_stride) == (64, 48, 4)


def test_older_contract_reads_without_optional_entries():
    io = ModelIO.from_dict(V1_IO)
    # what those models saw: the letterbox's resampling before it was part of the contract
    assert io == ModelIO(InputSpec(64, 48, 0.5, 0.25, reducing_gap=3.0), IO.heatmap, IO.landmarks)
    assert io.orientation is None and io.uncertainty is None
    assert IO.input.reducing_gap == 1.5  # new models


def test_incomplete_contract_names_what_is_missing():
    with pytest.raises(ValueError, match="lacks heatmap_sigma"):
        ModelIO.from_dict({k: v for k, v in V1_IO.items() if k != "heatmap_sigma"})


def _artifact(tmp_path):
    path = tmp_path / "m.onnx"
    atomic_write_bytes(path, b"stands in for a graph")
    return path


def test_manifest_writes_reads_and_validates_itself(tmp_path):
    path = _artifact(tmp_path)
    io = ModelIO(IO.input, IO.heatmap, IO.landmarks, orientation=ORIENTATION)
    manifest = Manifest(ArtifactEntry(file=path.name, sha256=sha256_file(path), bytes=21, opset=18),
                        io, source={"model": "m"}, tools={"edgeld": "x"},
                        sections={"parity": {"max_abs_logit_diff": 0.0}})
    manifest.write(path)
    assert json.loads(manifest_path(path).read_text())["format"] == MANIFEST_FORMAT
    assert Manifest.read(path) == manifest
    assert Manifest.read(path).io.orientation == ORIENTATION
    with pytest.raises(ValueError, match="may not be named"):
        Manifest(manifest.artifact, io, sections={"io": {}})


def test_version_1_manifest_still_loads(tmp_path):
    path = _artifact(tmp_path)
    manifest_path(path).write_text(json.dumps({
        "format": "edgeld-manifest/1", "io": V1_IO, "source": {"model": "m"},
        "artifact": {"file": path.name, "sha256": sha256_file(path), "kind": "onnx"}}))
    manifest = Manifest.read(path)
    assert manifest.io == ModelIO.from_dict(V1_IO) and manifest.io.orientation is None
    assert manifest.io.input.reducing_gap == 3.0
    assert manifest.artifact.precision == "fp32"  # the default version-1 readers assumed


@pytest.mark.parametrize("fmt,needle", [("edgeld-manifest/9", "newer than this edgeld reads"),
                                        ("something-else", "not an edgeld manifest")])
def test_unreadable_manifest_is_refused_in_one_line_naming_the_reexport(tmp_path, fmt, needle):
    path = _artifact(tmp_path)
    manifest_path(path).write_text(json.dumps({"format": fmt}))
    with pytest.raises(UserError, match=needle) as info:
        Manifest.read(path)
    assert "edgeld export MODEL --to onnx" in str(info.value) and "\n" not in str(info.value)


def test_orientation_travels_checkpoint_to_manifest_to_runtime(tmp_path):
    """The optional entry goes from checkpoint metadata through export to the runtime unchanged."""
    import torch

    from edgeld.config import ModelSpec
    from edgeld.export.onnx import export_onnx
    from edgeld.models.checkpoint import load_checkpoint, save_checkpoint
    from edgeld.models.landmarknet import LandmarkNet
    from edgeld.runtime import LandmarkDetector

    torch.manual_seed(0)
    model = LandmarkNet(ModelSpec(widths=(4, 8, 8, 8, 8), depths=(1, 1, 1, 1), decoder_width=8,
                                  num_landmarks=2))
    io = ModelIO(InputSpec(64, 64, 0.5, 0.25), HeatmapSpec(4, 1.5), ("a", "b"),
                 orientation=ORIENTATION)
    save_checkpoint(tmp_path / "m.safetensors", model, io, {})
    assert load_checkpoint(tmp_path / "m.safetensors")[1].orientation == ORIENTATION
    export_onnx(str(tmp_path / "m.safetensors"), tmp_path / "m.onnx")
    assert LandmarkDetector(tmp_path / "m.onnx").io.orientation == ORIENTATION


def test_shipped_student_carries_an_orientation_reference_and_the_teacher_predates_it():
    from edgeld.info import model_info

    assert model_info("isbi2015-student")["io"]["orientation"]["size"] == 48
    assert model_info("isbi2015-teacher")["io"]["orientation"] is None
