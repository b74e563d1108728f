import json
import subprocess
import sys

from click.testing import CliRunner

from edgeld.bench.report import pareto_front
from edgeld.cli import cli


def test_pareto_front_keeps_only_undominated_points():
    pts = [(10.0, 2.0), (5.0, 3.0), (20.0, 1.0), (15.0, 2.5), (5.0, 3.5)]
    assert pareto_front(pts) == [1, 0, 2]


def test_benchmark_then_report(tiny_onnx, shared_dataset, tmp_path):
    res = CliRunner().invoke(cli, ["benchmark", str(tiny_onnx), "--data", str(shared_dataset),
                                   "--split", "test1", "--seconds", "0.2", "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "b" / "results.json").read_text())["records"][0]
    assert record["cost"]["params"] > 0 and record["cost"]["bytes"] > 0
    res = CliRunner().invoke(cli, ["report", str(tmp_path / "b" / "results.json"),
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Pareto front" in md and "tiny.onnx" in md
    for png in ("accuracy_vs_latency.png", "sdr.png", "per_landmark.png", "size_and_compute.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_non_results_file_exits_2(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    res = subprocess.run([sys.executable, "-m", "edgeld", "report", str(bad), "--out",
                          str(tmp_path / "r")], capture_output=True, text=True)
    assert res.returncode == 2 and "not an edgeld benchmark" in res.stderr


# --- issue 14 items 13-17: rows, headline, cost, plots -------------------------------------------

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from edgeld.bench.device_cost import Device, DeviceTable, assign, load_devices, row_cost  # noqa: E402
from edgeld.bench.harness import results_markdown  # noqa: E402
from edgeld.bench.headline import headline  # noqa: E402
from edgeld.bench.report import load_records, render_report  # noqa: E402
from edgeld.bench.report_rows import merge_runs, per_landmark_choice  # noqa: E402
from edgeld.core.errors import UserError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CPU = ROOT / "benchmarks" / "cpu-2core"
REAL = [str(CPU / f / "results.json")
        for f in ("edge-artifacts", "cascade", "cascade3", "peers-run1", "peers-run2")]
EXAMPLE_DEVICES = ROOT / "benchmarks" / "devices.example.json"
CASCADE_INT8 = "student.int8-cpu.onnx + isbi2015-refiner.onnx (int8, onnxruntime-cpu)"
STUDENT_INT8 = "student.int8-cpu.onnx (int8, onnxruntime-cpu)"


def _record(model: str, e2e_ms: float, mre: float | None = 2.0, source: str = "a/results.json",
            repeats: list[float] | None = None, nbytes: int = 1000, **extra) -> dict:
    """A small synthetic benchmark record of the shape `edgeld benchmark` writes."""
    e2e = {"p50": e2e_ms, "p90": e2e_ms, "p99": e2e_ms, "mean": e2e_ms}
    if repeats:
        e2e["p50_repeats"] = repeats
    r = {"model": model, "backend": "onnxruntime-cpu", "precision": "fp32", "batch": 1,
         "latency_ms": {"p50": e2e_ms / 2, "p90": e2e_ms / 2, "p99": e2e_ms / 2, "mean": e2e_ms / 2},
         "end_to_end_ms": e2e, "throughput_ips": 2000.0 / e2e_ms, "source": source,
         "cost": {"params": 10, "macs": 20, "bytes": nbytes},
         "device": {"cpu": "Test CPU", "cpu_count": 4, "gpus": [], "jetson": None}}
    if mre is not None:
        r.update(mre_mm=mre, split="test1", reference="senior",
                 sdr_percent={"2.0": 60.0, "2.5": 70.0, "3.0": 80.0, "4.0": 90.0},
                 per_landmark=[{"name": f"L{i}", "mre_mm": mre + i / 10} for i in range(3)])
    r.update(extra)
    return r


def _rows(*records):
    return merge_runs(list(records))


def test_real_records_merge_repeated_artifacts_into_one_row():
    rows = merge_runs(load_records(REAL))
    by_label = {r.label: r for r in rows}
    assert len(rows) == 11  # 15 records: the peers ran twice, two artifacts also in edge-artifacts
    int8 = by_label[STUDENT_INT8]
    assert [Path(s).parent.name for s in int8.sources] == ["edge-artifacts", "peers-run1", "peers-run2"]
    assert len(int8.p50s) == 1 + 3 + 3  # one run, then two runs of three repeats
    assert int8.latency_ms == pytest.approx(20.75, abs=0.01)  # median of 16.10, 23.07, 20.75
    assert int8.spread_ms == pytest.approx((16.10, 23.93), abs=0.01)


def test_same_name_different_artifact_is_not_merged_and_is_told_apart():
    rows = _rows(_record("out/s.onnx", 10, source="run1/results.json"),
                 _record("out/s.onnx", 12, source="run2/results.json", nbytes=999))
    assert len(rows) == 2 and rows[0].label != rows[1].label
    assert rows[1].label.endswith("@ run2")


def test_duplicates_merge_with_median_latency_and_their_spread():
    rows = _rows(_record("out/s.onnx", 10, source="r1/results.json", repeats=[9, 10, 14]),
                 _record("out/s.onnx", 20, source="r2/results.json"),
                 _record("out/s.onnx", 12, source="r3/results.json"))
    assert len(rows) == 1
    assert rows[0].latency_ms == 12 and rows[0].spread_ms == (9, 20)


@pytest.mark.parametrize("latency, mre, ship", [
    (40, None, CASCADE_INT8),   # the most accurate within 40 ms
    # within 25 ms only the INT8 (20.7 ms, 1.973 mm) and FP32 (24.4 ms, 1.968 mm) students fit
    (25, None, "isbi2015-student.onnx (fp32, onnxruntime-cpu)"),
    (None, 2.0, STUDENT_INT8),  # the fastest within 2 mm
    (None, 1.56, CASCADE_INT8),
])
def test_headline_on_real_records(latency, mre, ship):
    text = headline(merge_runs(load_records(REAL)), latency, mre)
    assert len(text) == 1 and text[0].startswith("On AMD EPYC, 2 CPUs")
    assert f"ship {ship}:" in text[0]


def test_headline_budgets_nobody_meets_and_no_budget():
    rows = merge_runs(load_records(REAL))
    assert "no artifact meets the 15 ms latency budget" in headline(rows, 15, None)[0]
    assert "no artifact meets both budgets" in headline(rows, 25, 1.6)[0]
    assert "No artifact reaches the 1.5 mm MRE budget" in headline(rows, None, 1.5)[0]
    plain = headline(rows)[0]
    assert "ship" not in plain and "Give --latency-budget-ms" in plain
    assert CASCADE_INT8 in plain and STUDENT_INT8 in plain


def test_headline_synthetic_picks_and_ties():
    rows = _rows(_record("fast", 10, 2.5), _record("mid", 20, 1.8), _record("slow", 30, 1.5),
                 _record("mid-tie", 19, 1.8001))  # same MRE to the micrometre, faster: it wins
    assert "ship mid-tie (fp32, onnxruntime-cpu):" in headline(rows, 25, None)[0]
    assert "ship fast (fp32, onnxruntime-cpu):" in headline(rows, None, 3.0)[0]
    both = headline(rows, 35, 2.0)[0]
    assert "ship slow" in both and "The fastest within the 2 mm MRE budget is mid-tie" in both


def test_headline_warns_when_a_run_went_over_budget_and_per_device():
    rows = _rows(_record("a", 10, 2.0, repeats=[9, 10, 30]),
                 _record("b", 5, 2.0, device={"cpu": "Other", "cpu_count": 2, "gpus": [], "jetson": None}))
    text = headline(rows, 20, None)
    assert len(text) == 2
    assert "over the budget" in text[0] and text[1].startswith("On Other, 2 CPUs, ship b")


def test_headline_without_accuracy():
    assert "none can be recommended" in headline(_rows(_record("x", 10, None)), 20, 2.0)[0]


def test_per_landmark_choice_skips_near_copies():
    rows = _rows(_record("fast", 10, 2.0), _record("copy", 12, 2.01), _record("teacher", 50, 1.9),
                 _record("best", 20, 1.5))
    assert [r.first["model"] for r in per_landmark_choice(rows)] == ["fast", "best", "teacher"]


def test_cost_math_bought_and_rented():
    table = DeviceTable(path="t.json", devices={}, currency="EUR", electricity_per_kwh=0.5)
    row = _rows(_record("m", 10.0))[0]  # 100 images/s
    bought = row_cost(row, Device("box", power_w=100, price=1000, lifetime_h=1000), table)
    assert bought["images_per_s"] == pytest.approx(100)
    assert bought["images_per_s_per_price"] == pytest.approx(0.1)
    assert bought["energy_j"] == pytest.approx(1.0) and not bought["energy_measured"]
    # 1,000 images take 10 s: 1000 EUR * 10 s / 1000 h, plus 1000 J at 0.5 EUR/kWh
    assert bought["cost_per_1000"] == pytest.approx(1000 * 10 / 3.6e6 + 1000 / 3.6e6 * 0.5)
    rented = row_cost(row, Device("vm", power_w=20, price_per_hour=3.6), table)
    assert rented["cost_per_1000"] == pytest.approx(0.01) and rented["images_per_s_per_price"] == pytest.approx(100 / 3.6)
    measured = _rows(_record("j", 10.0, power_end_to_end={"energy_per_image_mj": 500.0}))[0]
    c = row_cost(measured, Device("jetson", power_w=15, price=250), table)
    assert c["energy_j"] == pytest.approx(0.5) and c["energy_measured"]


def test_devices_are_matched_from_the_record_or_forced():
    table = load_devices(EXAMPLE_DEVICES)
    rows = _rows(_record("a", 10), *merge_runs(load_records(REAL[:1]))[0].records)
    found = assign(rows, table)
    assert found[0][1] is None and found[0][2] == "no match"  # "Test CPU" is in no entry
    assert found[1][1].name.startswith("2-vCPU cloud VM") and "matched" in found[1][2]
    forced = assign(rows, table, "Jetson Orin Nano 8GB developer kit (example figures)")
    assert all(d.price == 249 and how == "--device" for _, d, how in forced)


def test_example_devices_file_says_it_holds_example_figures():
    text = EXAMPLE_DEVICES.read_text()
    data = json.loads(text)
    assert "NOT MEASUREMENTS" in data["about"]
    assert all("example" in name for name in data["devices"])
    assert any("Jetson" in n for n in data["devices"]) and any("desktop" in n for n in data["devices"])


def _write(tmp_path, text: str, name: str = "devices.json") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("content, extra, message", [
    (None, [], "devices file not found"),
    ("{not json", [], "is not valid JSON"),
    ('{"devices": {}}', [], "expected an object"),
    ('{"devices": {"d": {"price": 10}}}', [], "power_w must be a positive number"),
    ('{"devices": {"d": {"price": 10, "price_per_hour": 1, "power_w": 5}}}', [], "exactly one of"),
    ('{"devices": {"d": {"price": -1, "power_w": 5}}}', [], "price must be a positive number"),
    ('{"devices": {"d": {"price": 1, "power_w": 5}}}', ["--device", "e"], "--device 'e' is not in"),
])
def test_devices_file_errors_are_one_line_exit_2(tmp_path, content, extra, message):
    path = str(tmp_path / "missing.json") if content is None else _write(tmp_path, content)
    res = CliRunner().invoke(cli, ["report", REAL[0], "--out", str(tmp_path / "r"),
                                   "--devices", path, *extra])
    assert res.exit_code == 2, res.output
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing half-written


@pytest.mark.parametrize("args, message", [
    (["--latency-budget-ms", "-5"], "--latency-budget-ms must be a positive number"),
    (["--mre-budget-mm", "0"], "--mre-budget-mm must be a positive number"),
    (["--device", "x"], "give --devices PATH too"),
])
def test_bad_report_options_are_one_line_exit_2(tmp_path, args, message):
    res = CliRunner().invoke(cli, ["report", REAL[0], "--out", str(tmp_path / "r"), *args])
    assert res.exit_code == 2 and message in res.stderr, res.output
    assert len(res.stderr.strip().splitlines()) == 1


def test_yaml_devices_file(tmp_path):
    path = _write(tmp_path, "devices:\n  d:\n    match: AMD EPYC\n    price: 100\n    power_w: 10\n",
                  "devices.yaml")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="needs PyYAML"):
            load_devices(path)
        return
    assert load_devices(path).devices["d"].match == ("AMD EPYC",)


def test_report_of_the_committed_records_writes_every_plot_and_section(tmp_path):
    res = CliRunner().invoke(cli, ["report", *REAL, "--out", str(tmp_path / "r"),
                                   "--latency-budget-ms", "40", "--mre-budget-mm", "2",
                                   "--devices", str(EXAMPLE_DEVICES)])
    assert res.exit_code == 0, res.output
    for png in ("accuracy_vs_latency.png", "sdr.png", "per_landmark.png", "size_and_compute.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "r" / "report.md").read_text()
    assert f"ship {CASCADE_INT8}:" in md and "## Cost per image" in md
    assert "not measurements" in md and "3 (edge-artifacts, peers-run1, peers-run2)" in md
    assert md.count(f"| {STUDENT_INT8} |") == 2  # once in the table, once costed


def test_render_report_without_devices_has_no_cost_section(tmp_path):
    md = render_report([_record("a", 10), _record("b", 20, 1.5)], tmp_path / "r").read_text()
    assert "## Cost per image" not in md and "No budget given." in md


def test_results_markdown_has_params_macs_and_size():
    facts = {"cpu": "c", "cpu_count": 1, "os": "o", "libraries": {}}
    md = results_markdown([_record("out/a.onnx", 10, nbytes=2_500_000,
                                   cost={"params": 810035, "macs": 725852160, "bytes": 2_500_000})],
                          facts, "edgeld benchmark")
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header.endswith("| params | GMACs | MB |")
    assert "| 810,035 | 0.73 | 2.50 |" in md


def test_labels_stay_unique_and_fronts_are_per_device():
    other = {"cpu": "Other", "cpu_count": 2, "gpus": [], "jetson": None}
    rows = _rows(_record("s.onnx", 10, 2.0), _record("s.onnx", 30, 1.0, device=other),
                 _record("t.onnx", 20, 1.5, source="x/results.json", split="a"),
                 _record("t.onnx", 21, 1.5, source="x/results.json", split="b"))
    labels = [r.label for r in rows]
    assert len(set(labels)) == 4
    assert labels[:2] == ["s.onnx (fp32, onnxruntime-cpu) @ Test CPU, 4 CPUs",
                          "s.onnx (fp32, onnxruntime-cpu) @ Other, 2 CPUs"]
    assert labels[3].endswith("#2")  # same device, same folder: numbered
    from edgeld.bench.report_rows import front_rows
    assert rows[1] in front_rows(rows)  # alone on its device, so on its front
