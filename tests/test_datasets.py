import json

import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, SYNTH_NAMES, make_shared_dataset, needs_real_data
from edgeld.core.errors import UserError
from edgeld.data import open_dataset
from edgeld.data.datasets import ISBI2015_LANDMARKS


def test_shared_layout_reads_names_splits_references(shared_dataset):
    ds = open_dataset(shared_dataset)
    assert ds.landmark_names == SYNTH_NAMES
    assert len(ds.split("train")) == 12 and len(ds.split("test1")) == 4
    s = ds.split("train")[0]
    assert s.spacing_mm == (0.2, 0.2)
    assert s.reference("senior").shape == (3, 2)
    assert np.allclose(s.reference("mean"), (s.reference("senior") + s.reference("junior")) / 2)


def make_challenge_dataset(root, n=3):
    rng = np.random.default_rng(0)
    for split, folder in (("train", "TrainingData"), ("test1", "Test1Data")):
        (root / "RawImage" / folder).mkdir(parents=True)
    for ref in ("400_senior", "400_junior"):
        (root / "AnnotationsByMD" / ref).mkdir(parents=True)
    for i in range(1, 2 * n + 1):
        folder = "TrainingData" if i <= n else "Test1Data"
        Image.fromarray(rng.integers(0, 255, (60, 50), dtype=np.uint8)).save(
            root / "RawImage" / folder / f"{i:03d}.bmp")
        pts = rng.integers(0, 50, size=(19, 2))
        lines = [f"{x},{y}" for x, y in pts] + ["3", "1", "2"]  # extra lines follow the 19 points
        for ref in ("400_senior", "400_junior"):
            (root / "AnnotationsByMD" / ref / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_challenge_layout(tmp_path):
    ds = open_dataset(make_challenge_dataset(tmp_path / "ISBI"))
    assert ds.landmark_names == ISBI2015_LANDMARKS
    assert [s.image_id for s in ds.split("train")] == ["001.bmp", "002.bmp", "003.bmp"]
    assert ds.split("test1")[0].reference("junior").shape == (19, 2)
    assert ds.split("train")[0].spacing_mm == (0.1, 0.1)
    with pytest.raises(UserError, match="split 'test2' not found"):
        ds.split("test2")


def test_folder_of_neither_layout_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a dataset"):
        open_dataset(tmp_path)
    with pytest.raises(UserError, match="not found"):
        open_dataset(tmp_path / "nope")


@pytest.mark.parametrize("mutate,message", [
    (lambda rows: rows.__setitem__(1, rows[1].replace(rows[1].split(",")[2], "nan", 1)), "finite"),
    (lambda rows: rows.__setitem__(1, rows[1].replace(rows[1].split(",")[2], "abc", 1)), "numbers"),
    (lambda rows: rows.__setitem__(1, ",".join(rows[1].split(",")[:-2])), "values, expected"),
    (lambda rows: rows.__setitem__(0, rows[0].replace("tip_x", "top_x")), "header"),
])
def test_bad_annotations_are_user_errors(tmp_path, mutate, message):
    root = make_shared_dataset(tmp_path / "d", n_train=2, n_test=1)
    csv = root / "annotations" / "senior.csv"
    rows = csv.read_text().splitlines()
    mutate(rows)
    csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(UserError, match=message):
        open_dataset(root)


def test_empty_split_and_bad_dataset_json(tmp_path):
    root = make_shared_dataset(tmp_path / "d", n_train=2, n_test=1)
    (root / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="empty"):
        open_dataset(root).split("empty")
    (root / "dataset.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(UserError, match="dataset.json"):
        open_dataset(root)


@needs_real_data
def test_real_isbi2015_layout():
    ds = open_dataset(REAL_DATA)
    assert len(ds.landmark_names) == 19 and ds.landmark_names[0] == "sella"
    assert len(ds.split("train")) == 150 and len(ds.split("test1")) == 150
    s = ds.split("train")[0]
    assert s.spacing_mm == (0.1, 0.1)
    assert s.path.is_file()
    # senior and junior differ by about 2 mm on average (the README's human-agreement figure)
    diffs = [np.linalg.norm(x.reference("senior") - x.reference("junior"), axis=1).mean() * 0.1
             for x in ds.split("train")[:30]]
    assert 1.0 < np.mean(diffs) < 3.5
