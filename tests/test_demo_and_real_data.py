"""The bundled student on the bundled samples (always), and on the real test1 split (when present)."""


from conftest import REAL_DATA, needs_real_data
from edgeld.data import open_dataset
from edgeld.demo import SAMPLES, run_demo
from edgeld.evaluate import evaluate, mean_shape_baseline
from edgeld.load import open_detector


def test_demo_runs_end_to_end(tmp_path):
    rows = run_demo(tmp_path, echo=lambda _line: None)
    assert [r["backend"] for r in rows] == ["torch", "onnxruntime", "ort cascade"]
    assert abs(rows[0]["mre_mm"] - rows[1]["mre_mm"]) < 0.01
    assert rows[1]["mre_mm"] < 4.0  # the mean-shape floor is about 9.7 mm on ISBI test1
    assert rows[2]["mre_mm"] < rows[1]["mre_mm"]  # the refiner helps on these three images
    assert len(list((tmp_path / "overlays").glob("*.png"))) == 3
    assert (tmp_path / "isbi2015-student.onnx.json").is_file()


def test_bundled_samples_are_test_images_not_training_images():
    ids = [s.image_id for s in open_dataset(SAMPLES).split("demo")]
    assert all(int(i.split(".")[0]) > 150 for i in ids) and len(ids) <= 5


@needs_real_data
def test_student_beats_mean_shape_baseline_on_real_test1():
    ds = open_dataset(REAL_DATA)
    subset = "test1"
    ds.splits["first20"] = ds.split(subset)[:20]
    result = evaluate(open_detector("isbi2015-student"), ds, "first20", progress=False)
    floor = mean_shape_baseline(ds, "first20")
    assert result["mre_mm"] < 3.0 < floor["mre_mm"]
    assert result["sdr_percent"]["4.0"] > 75.0
    cascade = evaluate(open_detector("isbi2015-student", refiner="isbi2015-refiner"), ds, "first20",
                       progress=False)
    assert cascade["mre_mm"] < result["mre_mm"] - 0.2
