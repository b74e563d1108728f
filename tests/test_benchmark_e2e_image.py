"""End-to-end timing runs on a film the detector answers: a refused film skips the refiner, so
timing one would report a cascade as fast as its first stage."""
import json

import numpy as np
from click.testing import CliRunner

from edgeld.bench.device import device_facts
from edgeld.bench.harness import benchmark_detector, results_markdown, sample_film
from edgeld.cli import cli
from edgeld.load import open_detector


def test_the_default_end_to_end_film_is_one_the_shipped_cascade_refines():
    detector = open_detector("isbi2015-student", refiner="isbi2015-refiner")
    detection = detector.detect(sample_film(), 0.1)
    assert sample_film().shape == (2400, 1935)
    assert detection.quality.usable
    assert detection.uncertainty is not None  # a cascade scores only what it refined


def test_a_refused_image_is_not_timed_end_to_end_and_the_report_says_why():
    detector = open_detector("isbi2015-student", refiner="isbi2015-refiner")
    noise = np.random.default_rng(0).integers(0, 256, (2400, 1935), dtype=np.uint8)
    record = benchmark_detector(detector, "cascade", 1, noise, warmup_s=0.0, min_seconds=0.0,
                                min_runs=2)
    assert "end_to_end_ms" not in record
    assert "does not look like this model's films" in record["end_to_end_refused"]
    assert record["latency_ms"]["p50"] > 0  # model-only time needs no answer and is still timed
    record["cost"] = {}
    text = results_markdown([record], device_facts(1), "test")
    row = next(line for line in text.splitlines() if line.startswith("| cascade |"))
    assert row.split(" | ")[7] == "refused"
    assert "End-to-end not timed" in text and record["end_to_end_refused"] in text


def test_benchmark_without_data_times_a_cascade_end_to_end(tmp_path):
    res = CliRunner().invoke(cli, ["benchmark", "isbi2015-student", "--refiner", "isbi2015-refiner",
                                   "--backend", "torch-cpu", "--seconds", "0.1", "--min-runs", "2",
                                   "--out", str(tmp_path / "b")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    (record,) = json.loads((tmp_path / "b" / "results.json").read_text())["records"]
    assert record["cascade"] and "end_to_end_refused" not in record
    assert record["end_to_end_ms"]["p50"] > 0
