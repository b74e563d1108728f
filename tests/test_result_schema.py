"""edgeld/schemas/detection-result.schema.json against real results, and against broken ones."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import edgeld
from edgeld.cli import cli
from edgeld.data import load_grayscale, open_dataset
from edgeld.demo import MODEL, SAMPLES
from edgeld.load import open_detector

jsonschema = pytest.importorskip("jsonschema")  # a dev extra, never a runtime dependency

SCHEMA_PATH = Path(edgeld.__file__).resolve().parent / "schemas" / "detection-result.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def predict_validator(validator) -> jsonschema.Draft202012Validator:
    """The schema's $defs/predict_output: the array `edgeld predict --json` writes."""
    import referencing

    schema = validator.schema
    registry = referencing.Registry().with_resource(schema["$id"],
                                                    referencing.Resource.from_contents(schema))
    return jsonschema.Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/predict_output"},
                                           registry=registry)


@pytest.fixture(scope="module")
def real_records() -> list[dict]:
    """Real detections of the bundled student on the bundled samples, with and without a spacing,
    round-tripped through JSON as an integrator would receive them."""
    samples = open_dataset(SAMPLES).split("demo")
    detector = open_detector(MODEL)
    image = load_grayscale(samples[0].path)
    with_spacing = detector.detect(image, samples[0].spacing_mm).to_dict(str(samples[0].path))
    without = detector.detect(image).to_dict(str(samples[0].path))
    return json.loads(json.dumps([with_spacing, without]))


def test_schema_is_shipped_as_package_data():
    setup_py = (Path(__file__).resolve().parents[1] / "setup.py").read_text(encoding="utf-8")
    assert "schemas/*.schema.json" in setup_py and SCHEMA_PATH.is_file()
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$id"] and schema["additionalProperties"] is True


def test_real_detections_validate(validator, real_records):
    with_spacing, without = real_records
    assert with_spacing["spacing_mm"] == [0.1, 0.1] and len(with_spacing["landmarks"]) == 19
    assert without["spacing_mm"] is None and without["landmarks"][0]["x_mm"] is None
    for record in real_records:
        validator.validate(record)


def test_real_predict_json_validates(predict_validator, tmp_path):
    images = [str(p) for p in sorted((SAMPLES / "images").glob("*.jpg"))[:2]]
    out = tmp_path / "predict.json"
    result = CliRunner().invoke(cli, ["predict", MODEL, *images, "--spacing", "0.1", "--json",
                                      str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [r["image"] for r in records] == images
    predict_validator.validate(records)


def _drop_confidence(r: dict) -> None:
    del r["landmarks"][0]["confidence"]


def _drop_landmarks(r: dict) -> None:
    del r["landmarks"]


def _drop_spacing(r: dict) -> None:
    del r["spacing_mm"]


def _string_x(r: dict) -> None:
    r["landmarks"][3]["x_px"] = str(r["landmarks"][3]["x_px"])


def _scalar_spacing(r: dict) -> None:
    r["spacing_mm"] = 0.1


def _negative_confidence(r: dict) -> None:
    r["landmarks"][0]["confidence"] = -0.01


def _confidence_over_one(r: dict) -> None:
    r["landmarks"][0]["confidence"] = 1.5


def _zero_spacing(r: dict) -> None:
    r["spacing_mm"] = [0.0, 0.1]


def _mm_without_spacing(r: dict) -> None:
    r["spacing_mm"] = None  # x_mm / y_mm still numbers: inconsistent


def _empty_landmarks(r: dict) -> None:
    r["landmarks"] = []


@pytest.mark.parametrize("breakage", [_drop_confidence, _drop_landmarks, _drop_spacing, _string_x,
                                      _scalar_spacing, _negative_confidence, _confidence_over_one,
                                      _zero_spacing, _mm_without_spacing, _empty_landmarks])
def test_broken_results_fail_validation(validator, real_records, breakage):
    broken = copy.deepcopy(real_records[0])
    breakage(broken)
    assert not validator.is_valid(broken)


def test_extra_fields_are_tolerated(validator, real_records):
    """Producers may add fields (e.g. predict's DICOM spacing source) without breaking consumers."""
    record = copy.deepcopy(real_records[0])
    record["spacing_source"] = "PixelSpacing"
    record["landmarks"][0]["note"] = "extra"
    validator.validate(record)
