import numpy as np
import pytest
from PIL import Image

from edgeld.core.errors import UserError
from edgeld.data import load_grayscale


def test_missing_empty_truncated_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_grayscale(tmp_path / "missing.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_grayscale(tmp_path / "empty.jpg")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        load_grayscale(tmp_path / "text.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)).save(
        tmp_path / "full.jpg", quality=90)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_grayscale(tmp_path / "cut.jpg")


def test_colour_palette_and_16_bit_images_are_read(tmp_path):
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    gray = load_grayscale(tmp_path / "rgb.png")
    assert gray.shape == (10, 12) and gray.dtype == np.uint8 and 100 < gray[0, 0] < 200
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    assert load_grayscale(tmp_path / "pal.png").shape == (10, 12)
    deep = (np.arange(120, dtype=np.uint16).reshape(10, 12) * 500)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    back = load_grayscale(tmp_path / "deep.png")
    assert back.dtype == np.uint16 and np.array_equal(back, deep)
