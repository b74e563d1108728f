import pytest
import torch

from edgeld.config import ModelSpec
from edgeld.core.contract import HeatmapSpec, InputSpec, ModelIO
from edgeld.core.errors import UserError
from edgeld.models.checkpoint import load_checkpoint, save_checkpoint
from edgeld.models.cost import count_macs, count_params
from edgeld.models.landmarknet import LandmarkNet
from edgeld.train.trainer import ROLE_MODELS


@pytest.mark.parametrize("role", sorted(ROLE_MODELS))
def test_every_model_exposes_intermediates_matching_feature_info(role):
    model = LandmarkNet(ROLE_MODELS[role]).eval()
    x = torch.zeros(2, 1, 128, 96)
    feats = model.forward_intermediates(x)
    assert len(feats) == len(model.feature_info)
    for f, info in zip(feats, model.feature_info):
        assert f.shape == (2, info["num_chs"], 128 // info["reduction"], 96 // info["reduction"])
    out = model(x)
    assert out.shape == (2, 19, 32, 24)
    assert torch.allclose(out, model.forward_head(model.forward_features(x)))


def test_student_fits_its_budget():
    model = LandmarkNet(ROLE_MODELS["student"])
    assert count_params(model) <= 1_000_000
    assert count_macs(model, 384, 320) <= 2_000_000_000


def test_mac_count_matches_hand_count():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Conv2d(8, 4, 1, stride=2),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10))
    expected = 16 * 16 * 8 * 9 + 8 * 8 * 4 * 8 + 256 * 10
    assert count_macs(model, 16, 16) == expected


def test_checkpoint_round_trip_and_truncation(tmp_path):
    model = LandmarkNet(ModelSpec(widths=(4, 8, 8, 8, 8), depths=(1, 1, 1, 1), decoder_width=8,
                                  num_landmarks=2)).eval()
    io = ModelIO(InputSpec(64, 64, 0.5, 0.25), HeatmapSpec(4, 1.5), ("a", "b"))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, io, {"note": "x"})
    loaded, io2, meta = load_checkpoint(path)
    assert io2 == io and meta["note"] == "x" and meta["params"] == count_params(model)
    x = torch.randn(1, 1, 64, 64)
    assert torch.equal(model(x), loaded(x))
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "cut.safetensors")
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_float16_storage_halves_the_file_and_keeps_outputs(tmp_path):
    from edgeld.models.checkpoint import shrink_checkpoint

    torch.manual_seed(0)
    model = LandmarkNet(ModelSpec(widths=(8, 16, 16, 16, 16), depths=(1, 1, 1, 1), decoder_width=16,
                                  num_landmarks=2)).eval()
    io = ModelIO(InputSpec(64, 64, 0.5, 0.25), HeatmapSpec(4, 1.5), ("a", "b"))
    save_checkpoint(tmp_path / "a.safetensors", model, io, {"training": {"epochs": 1}})
    shrink_checkpoint(tmp_path / "a.safetensors", tmp_path / "b.safetensors")
    small, io2, meta = load_checkpoint(tmp_path / "b.safetensors")
    assert meta["storage_dtype"] == "float16" and meta["training"] == {"epochs": 1} and io2 == io
    assert (tmp_path / "b.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size
    x = torch.randn(1, 1, 64, 64)
    assert torch.allclose(model(x), small(x), atol=2e-2)
