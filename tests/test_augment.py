"""Training augmentation: the elastic deformation moves each landmark exactly where its pixels go,
and the options that are off by default leave the default recipe's random draws unchanged."""
import json

import numpy as np
import pytest

from edgeld.data.augment import (elastic_displacement, elastic_limit_px, elastic_warp_image,
                                 elastic_warp_points,
                                 random_affine, random_elastic, random_intensity, warp_image,
                                 warp_points)

H, W = 384, 320


def _blob(point, sigma=2.0, hw=(H, W)):
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    return np.exp(-((xx - point[0]) ** 2 + (yy - point[1]) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def _centroid(image):
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(image * xx).sum(), (image * yy).sum()]) / image.sum()


@pytest.mark.parametrize("max_px", [4.0, 8.0, 16.0])
def test_landmark_follows_the_pixels(max_px):
    """A small bright blob warped with the image lands where elastic_warp_points puts its centre."""
    rng = np.random.default_rng(int(max_px))
    for _ in range(10):
        p = np.array([rng.uniform(40, W - 40), rng.uniform(40, H - 40)])
        control = random_elastic(rng, max_px)
        q = elastic_warp_points(p[None], control, H, W)[0]
        assert np.abs(_centroid(elastic_warp_image(_blob(p), control)) - q).max() < 0.05
        # and q maps back onto p through the backward map, to the iteration's tolerance
        back = q + elastic_displacement(control, H, W, q[None])[0]
        assert np.abs(back - p).max() < 1e-3


def test_after_the_affine_warp_too():
    """The dataset's order (affine, then elastic) keeps a blob and its point together."""
    rng = np.random.default_rng(5)
    p = np.array([[150.3, 201.7]])
    matrix = random_affine(rng, H, W, 15, 0.2, 0.08)
    control = random_elastic(rng, 8.0)
    image = elastic_warp_image(warp_image(_blob(p[0], 2.5), matrix), control)
    q = elastic_warp_points(warp_points(p, matrix), control, H, W)
    assert np.abs(_centroid(image) - q[0]).max() < 0.05


def test_zero_displacement_is_the_identity():
    rng = np.random.default_rng(0)
    image = rng.random((H, W)).astype(np.float32)
    control = random_elastic(rng, 0.0)
    assert not control.any()
    assert np.array_equal(elastic_warp_image(image, control), image)
    points = rng.uniform(0, 300, size=(19, 2))
    assert np.array_equal(elastic_warp_points(points, control, H, W), points)


def test_displacement_is_bounded_smooth_and_consistent():
    """|d| never exceeds the control range; the dense field and the point evaluation agree."""
    rng = np.random.default_rng(1)
    control = random_elastic(rng, 8.0)
    dy, dx = elastic_displacement(control, H, W)
    assert np.abs(dy).max() <= 8.0 and np.abs(dx).max() <= 8.0
    assert np.abs(np.diff(dy, axis=0)).max() < 0.5 and np.abs(np.diff(dx, axis=1)).max() < 0.5
    ys, xs = rng.integers(0, H, 50), rng.integers(0, W, 50)
    at = elastic_displacement(control, H, W, np.stack([xs, ys], axis=1))
    assert np.allclose(at[:, 0], dx[ys, xs]) and np.allclose(at[:, 1], dy[ys, xs])


def test_inversion_converges_up_to_the_fold_limit():
    """Below elastic_limit_px the warp cannot fold; the inversion converges even close to it."""
    limit = elastic_limit_px(H, W)
    assert 21 < limit < 22  # 384x320, 5x5 grid
    rng = np.random.default_rng(2)
    for _ in range(5):
        control = np.sign(rng.uniform(-1, 1, (2, 5, 5))) * 0.9 * limit  # the steepest fields
        p = rng.uniform(0, [W, H], size=(19, 2))
        q = elastic_warp_points(p, control, H, W)
        assert np.abs(q + elastic_displacement(control, H, W, q) - p).max() < 1e-3
        dy, dx = elastic_displacement(control, H, W)
        assert (np.diff(dx, axis=1) > -1).all() and (np.diff(dy, axis=0) > -1).all()  # no folding


def test_zero_fill_outside():
    """Pixels that sample outside the input read zero (as the affine warp's fill)."""
    control = np.zeros((2, 5, 5))
    control[0] = 50.0  # (dy, dx): every output pixel samples 50 rows further down
    out = elastic_warp_image(np.ones((H, W), np.float32), control)
    assert (out[-40:] == 0).all() and (out[:H - 60] == 1).all()
    control = control[::-1].copy()  # now 50 columns to the right
    out = elastic_warp_image(np.ones((H, W), np.float32), control)
    assert (out[:, -40:] == 0).all() and (out[:, :W - 60] == 1).all()


def test_intensity_strength_one_is_the_default_and_draws_the_same():
    image = np.random.default_rng(0).random((32, 24)).astype(np.float32)
    a, b, c = (np.random.default_rng(7) for _ in range(3))
    assert np.array_equal(random_intensity(a, image), random_intensity(b, image, 1.0))
    stronger = random_intensity(c, image, 2.0)
    assert not np.array_equal(stronger, random_intensity(np.random.default_rng(7), image))
    assert a.random() == c.random()  # same number of draws at any strength


def test_default_recipe_draws_are_unchanged():
    """With elastic off and intensity 1, the dataset draws exactly affine then intensity, as before."""
    from edgeld.config import TrainSpec
    from edgeld.core.codec import SoftmaxHeatmapCodec
    from edgeld.core.letterbox import Letterbox, normalize
    from edgeld.torchside.heatmap_dataset import CachedSample, HeatmapDataset

    rng = np.random.default_rng(3)
    image, points = rng.random((64, 64)).astype(np.float32), rng.uniform(10, 50, (3, 2))
    item = CachedSample(None, image, points, Letterbox.fit((64, 64), (64, 64)))
    codec = SoftmaxHeatmapCodec((64, 64), 4, 1.5)
    x, _, cells = HeatmapDataset([item], codec, 0.5, 0.25, TrainSpec(), seed=11)[0]
    spec, draws = TrainSpec(), np.random.default_rng(11)
    matrix = random_affine(draws, 64, 64, spec.rotate_deg, spec.scale_range, spec.shift_fraction)
    expected = random_intensity(draws, warp_image(image, matrix))
    assert np.array_equal(x.numpy()[0], normalize(expected, 0.5, 0.25))
    assert np.allclose(cells.numpy(), codec.to_cells(warp_points(points, matrix)))


def test_cli_records_the_augmentation_and_refuses_it_for_a_refiner(shared_dataset, tiny_checkpoint,
                                                                    tmp_path):
    from click.testing import CliRunner

    from edgeld.cli import cli

    out = tmp_path / "run"
    args = ["train", "--data", str(shared_dataset), "--out", str(out), "--epochs", "1",
            "--input-size", "64x64", "--batch-size", "4", "--val-count", "3", "--threads", "1",
            "--rotate", "15", "--scale-range", "0.2", "--shift", "0.08", "--elastic", "3",
            "--intensity", "1.5"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    spec = json.loads((out / "config.json").read_text())["train"]
    assert (spec["rotate_deg"], spec["scale_range"], spec["shift_fraction"], spec["elastic_px"],
            spec["intensity_strength"]) == (15, 0.2, 0.08, 3, 1.5)
    result = CliRunner().invoke(cli, ["train", "--role", "refiner", "--stage1", str(tiny_checkpoint),
                                      "--data", str(shared_dataset), "--out", str(tmp_path / "r"),
                                      "--elastic", "3"])
    assert result.exit_code != 0 and "refiner" in result.output
    result = CliRunner().invoke(cli, [*args[:-4], "--elastic", "4", "--out", str(tmp_path / "fold")])
    assert result.exit_code != 0 and "fold" in result.output  # 64x64: the limit is 3.9 px
