"""A MODEL argument is resolved once (edgeld.model_ref) and travels on as a ModelRef."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import edgeld
from edgeld.core.errors import UserError
from edgeld.model_ref import ModelRef, resolve_model

EDGELD = Path(edgeld.__file__).parent


@pytest.mark.parametrize("arg, kind", [("isbi2015-student", "builtin"), ("runs/a.safetensors", "checkpoint"),
                                       ("m.onnx", "onnx"), ("m.ENGINE", "engine")])
def test_each_kind_is_told_apart(arg, kind):
    ref = resolve_model(arg)
    assert ref.kind == kind and ref.name == arg and str(ref) == arg
    assert ref.is_checkpoint == (kind in ("builtin", "checkpoint"))
    assert ref.is_artifact == (kind in ("onnx", "engine"))


def test_builtin_resolves_to_its_shipped_weights():
    ref = resolve_model("isbi2015-student")
    assert ref.path.is_file() and ref.path.suffix == ".safetensors"
    assert ref.io.input_height == 384 and len(ref.io.landmarks) == 19
    assert resolve_model(ref) is ref  # a ModelRef passes through: resolved once


@pytest.mark.parametrize("arg, words", [("no-such-model", "unknown model"),
                                        ("folder/model.pt", "cannot tell what model")])
def test_unknown_models_are_user_errors(arg, words):
    with pytest.raises(UserError, match=words):
        resolve_model(arg)


def test_missing_files_fail_on_first_read_not_on_resolve(tmp_path):
    for name, words in (("gone.onnx", "model file not found"), ("gone.safetensors", "checkpoint not found")):
        ref = resolve_model(str(tmp_path / name))  # resolving touches no file
        with pytest.raises(UserError, match=words):
            ref.metadata


def test_artifact_metadata_is_its_manifest(tiny_onnx, tiny_checkpoint):
    onnx, ckpt = resolve_model(str(tiny_onnx)), resolve_model(str(tiny_checkpoint))
    assert onnx.metadata["artifact"]["kind"] == "onnx"
    assert onnx.io == ckpt.io


def test_resolving_stays_light():
    """safetensors reads the header through numpy; torch and ONNX Runtime stay unloaded."""
    code = ("import sys; from edgeld.model_ref import resolve_model; import edgeld.options, edgeld.cli; "
            "resolve_model('isbi2015-student').metadata; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_resolver_classifies():
    """No module but model_ref looks at a MODEL's suffix or the built-in table to decide its kind."""
    offenders = []
    for path in EDGELD.rglob("*.py"):
        if path.name in ("model_ref.py", "registry.py"):
            continue
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        if names & {"model_kind", "checkpoint_path", "BUILTIN_MODELS", "builtin_path"}:
            offenders.append(str(path.relative_to(EDGELD)))
    assert offenders == []


def test_model_ref_is_frozen():
    ref = resolve_model("m.onnx")
    assert isinstance(ref, ModelRef)
    with pytest.raises(AttributeError):
        ref.kind = "engine"


@pytest.mark.parametrize("name", ["isbi2015-student-mean", "isbi2015-refiner-mean"])
def test_mean_trained_builtins_say_what_they_were_trained_toward(name):
    """The mean-annotation pair: final runs (no validation films of their own) trained toward
    the mean of the two annotators, with the decoding chosen on the validated run's films."""
    ref = resolve_model(name)
    training = ref.metadata["training"]
    assert ref.kind == "builtin" and training["reference"] == "mean"
    assert training["val_images"] == []
    assert ref.io.codec().softargmax_radius > 0
    if name.endswith("student-mean"):
        assert training["kd"] == "none" and training["best"]["epoch"] == training["train"]["epochs"]
        assert ref.io.orientation is not None
    else:
        assert ref.io.patch_size == 64 and ref.io.film_spacing_mm == (0.1, 0.1)
