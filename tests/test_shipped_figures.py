"""The shipped models' published test1 figures, pinned to README's Results table (real data only).

The numbers are read from README itself, so the test and README cannot disagree: a change that
moves the shipped student's or a shipped cascade's test1 MRE by more than TOLERANCE_MM fails
here (against the senior, and for the mean-trained cascade against the mean too), and so does an
edit of README that is not measured.
"""
from pathlib import Path

import pytest

from conftest import REAL_DATA, needs_real_data

README = Path(__file__).resolve().parents[1] / "README.md"
RESULTS_HEADING = "## Results (ISBI 2015 test1, 150 images)"
MRE_COLUMN = "test1 MRE (senior)"
MEAN_COLUMN = "MRE (mean of senior+junior)"
TOLERANCE_MM = 0.005
# README row label -> the MODEL and --refiner arguments that row was measured with (torch path)
SHIPPED = {
    "`isbi2015-student` (output KD from the teacher; torch)": ("isbi2015-student", None),
    "`isbi2015-student` + `isbi2015-refiner` (cascade)": ("isbi2015-student", "isbi2015-refiner"),
    "`isbi2015-student-mean` + `isbi2015-refiner-mean` (trained toward the mean)":
        ("isbi2015-student-mean", "isbi2015-refiner-mean"),
}
# rows also pinned in the mean-annotation column: the models trained toward it
MEAN_PINNED = ["`isbi2015-student-mean` + `isbi2015-refiner-mean` (trained toward the mean)"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def readme_results_mre(text: str, column_name: str = MRE_COLUMN) -> dict[str, float]:
    """Row label -> test1 MRE in mm (the senior column, or `column_name`), from the first table
    under README's Results heading; rows with no figure in that column are left out."""
    if RESULTS_HEADING not in text:
        raise AssertionError(f"README lacks the heading {RESULTS_HEADING!r}")
    section = text.split(RESULTS_HEADING, 1)[1].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    table = []
    for line in section[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    column = _cells(table[0]).index(column_name)
    rows = {}
    for line in table[2:]:  # header, then the |---| rule
        cells = _cells(line)
        if cells[column] != "-":
            rows[cells[0]] = float(cells[column].strip("*").removesuffix(" mm"))
    return rows


def test_readme_results_table_parses():
    """Runs everywhere: the table this file pins is where the test looks for it."""
    rows = readme_results_mre(README.read_text(encoding="utf-8"))
    for label in SHIPPED:
        assert label in rows, f"README's Results table has no row {label!r} (rows: {list(rows)})"
        assert 1.0 < rows[label] < 3.0
    mean_rows = readme_results_mre(README.read_text(encoding="utf-8"), MEAN_COLUMN)
    assert all(1.0 < mean_rows[label] < 3.0 for label in MEAN_PINNED)


@pytest.fixture(scope="module")
def test1():
    from edgeld.data import open_dataset

    dataset = open_dataset(REAL_DATA)
    assert len(dataset.split("test1")) == 150  # what README's heading says it measured
    return dataset


@needs_real_data
@pytest.mark.parametrize("label, reference", [(label, "senior") for label in SHIPPED]
                         + [(label, "mean") for label in MEAN_PINNED])
def test_shipped_test1_mre_matches_readme(label, reference, test1):
    from edgeld.evaluate import evaluate
    from edgeld.load import open_detector

    column = MRE_COLUMN if reference == "senior" else MEAN_COLUMN
    published = readme_results_mre(README.read_text(encoding="utf-8"), column)[label]
    model, refiner = SHIPPED[label]
    result = evaluate(open_detector(model, refiner=refiner), test1, "test1", reference=reference,
                      progress=False)
    assert result["n_images"] == 150
    assert abs(result["mre_mm"] - published) <= TOLERANCE_MM, (
        f"{label}: test1 MRE ({reference}) {result['mre_mm']:.4f} mm, README says {published:.3f} mm "
        f"(tolerance {TOLERANCE_MM} mm): measure again and update README, or find the regression")
