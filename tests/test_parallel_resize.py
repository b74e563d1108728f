"""The letterbox's two-thread 8-bit resize is bit for bit Pillow's one-thread resize: on the ISBI
film size (where it must split), on sizes where it splits or declines, on a real film, with one
usable core, and in a forked child (a DataLoader worker) after the parent has used its helper."""
from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from PIL import Image

import edgeld.core.parallel_resize as pr
from edgeld.core.letterbox import Letterbox
from edgeld.data import load_grayscale
from edgeld.data.datasets import BUNDLED_SAMPLES


def _pillow(image: np.ndarray, size: tuple[int, int], gap: float | None) -> np.ndarray:
    return np.asarray(Image.fromarray(image, mode="L").resize(size, Image.BILINEAR, reducing_gap=gap))


def _size(shape: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int]:
    box = Letterbox.fit(shape, dst)
    return box.resized_w, box.resized_h


def test_the_isbi_film_size_splits_exactly():
    plan = pr.split_plan((2400, 1935), (310, 384), 1.5)
    assert plan is not None and plan.split_row % plan.fy == 0
    image = np.random.default_rng(0).integers(0, 256, (2400, 1935), dtype=np.uint8)
    assert np.array_equal(pr.resize_uint8(image, (310, 384), 1.5), _pillow(image, (310, 384), 1.5))


@pytest.mark.parametrize("shape", [(2000, 1600), (3000, 2400), (1935, 2400), (2048, 2048), (1001, 1999),
                                   (2401, 1937), (4000, 3000)])
@pytest.mark.parametrize("gap", [1.5, 3.0, None])
def test_every_size_equals_pillow(shape, gap):
    image = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    for dst in [(384, 320), (512, 416), (256, 256)]:
        size = _size(shape, dst)
        assert np.array_equal(pr.resize_uint8(image, size, gap), _pillow(image, size, gap)), (shape, dst, gap)


def test_a_real_film_and_one_core(monkeypatch):
    film = load_grayscale(BUNDLED_SAMPLES / "images" / "151.jpg")
    size = _size(film.shape, (384, 320))
    expected = _pillow(film, size, 1.5)
    assert np.array_equal(pr.resize_uint8(film, size, 1.5), expected)
    monkeypatch.setattr(pr, "_POOL", None)
    monkeypatch.setattr(pr.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert pr._helper() is None
    assert np.array_equal(pr.resize_uint8(film, size, 1.5), expected)


def _child(queue) -> None:
    image = np.random.default_rng(5).integers(0, 256, (2400, 1935), dtype=np.uint8)
    queue.put(pr.resize_uint8(image, (310, 384), 1.5).tobytes())


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork here")
def test_a_forked_child_resizes_after_the_parent_used_its_helper():
    image = np.random.default_rng(5).integers(0, 256, (2400, 1935), dtype=np.uint8)
    expected = pr.resize_uint8(image, (310, 384), 1.5)  # the parent's helper thread now exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    try:
        got = queue.get(timeout=60)  # a child waiting on the parent's dead thread would hang here
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert got == expected.tobytes()
