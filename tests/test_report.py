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
    for png in ("accuracy_vs_latency.png", "accuracy_vs_size.png", "per_landmark.png"):
        assert (tmp_path / "r" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_non_results_file_exits_2(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    res = subprocess.run([sys.executable, "-m", "edgeld", "report", str(bad), "--out",
                          str(tmp_path / "r")], capture_output=True, text=True)
    assert res.returncode == 2 and "not an edgeld benchmark" in res.stderr
