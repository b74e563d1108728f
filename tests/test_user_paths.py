"""What a new user trips over (issue 14): clear refusals instead of tracebacks or silent switches,
readable output, folders of images, split files that stay inside their dataset."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_shared_dataset
from edgeld.core.errors import UserError
from edgeld.data import open_dataset

NO_TORCH = '''
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ["edgeld"] + sys.argv[1:]
runpy.run_module("edgeld", run_name="__main__")
'''


def _edgeld(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeld", *args], capture_output=True, text=True,
                          cwd=cwd)


@pytest.mark.parametrize("args", [
    ["demo", "--out", "{tmp}/demo"],
    ["export", "isbi2015-student", "--to", "onnx", "--out", "{tmp}/s.onnx"],
    ["train", "--data", "{data}", "--out", "{tmp}/run", "--epochs", "1"],
])
def test_commands_that_need_torch_say_which_extra_without_it(tmp_path, shared_dataset, args):
    script = tmp_path / "no_torch.py"
    script.write_text(NO_TORCH)
    args = [a.format(tmp=tmp_path, data=shared_dataset) for a in args]
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == "error: torch is not installed: pip install 'edgeld[torch]'"
    assert "Traceback" not in run.stderr


def test_benchmark_refuses_a_backend_that_cannot_run_the_model(tmp_path, trained_tiny):
    checkpoint = _edgeld("benchmark", str(trained_tiny["checkpoint"]), "--backend", "onnxruntime-cpu",
                         "--out", str(tmp_path / "a"))
    assert checkpoint.returncode == 2 and "cannot run" in checkpoint.stderr
    assert "export it first" in checkpoint.stderr and not (tmp_path / "a").exists()
    onnx = _edgeld("benchmark", str(trained_tiny["onnx"]), "--backend", "torch-cpu",
                   "--out", str(tmp_path / "b"))
    assert onnx.returncode == 2 and "onnxruntime-* backends" in onnx.stderr
    assert len(onnx.stderr.strip().splitlines()) == 1


def test_predict_takes_a_folder_and_prints_a_table(tmp_path, trained_tiny):
    folder = tmp_path / "films"
    folder.mkdir()
    images = sorted((trained_tiny["data"] / "images").glob("*.png"))[:2]
    for image in images:
        shutil.copy(image, folder / image.name)
    (folder / "notes.txt").write_text("not an image")
    run = _edgeld("predict", str(trained_tiny["onnx"]), str(folder), "--spacing", "0.2")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sum("landmarks, mean confidence" in line for line in lines) == 2
    header = next(line for line in lines if "landmark" in line and "x (mm)" in line)
    assert header.split() == ["landmark", "x", "(mm)", "y", "(mm)", "conf"]
    row = next(line for line in lines if line.strip().startswith("tip"))
    assert len(row.split()) == 4 and float(row.split()[1]) > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    run = _edgeld("predict", str(trained_tiny["onnx"]), str(empty))
    assert run.returncode == 2 and "no image files" in run.stderr


@pytest.mark.parametrize("entry", ["../../../etc/hostname", "/etc/hostname", "sub/../../x.png"])
def test_split_files_cannot_name_files_outside_the_dataset(tmp_path, entry):
    root = make_shared_dataset(tmp_path / "d", n_train=3, n_test=1)
    (root / "evil.txt").write_text(entry + "\n")
    with pytest.raises(UserError, match="points outside the dataset"):
        open_dataset(root).split("evil")
    assert open_dataset(root).split("train")  # the honest splits still open


def test_info_says_how_weights_are_stored_and_where_they_came_from():
    run = _edgeld("info", "isbi2015-teacher")
    assert run.returncode == 0
    assert "weights stored as float16" in run.stdout
    assert "origin: role teacher" in run.stdout and "best validation MRE" in run.stdout
