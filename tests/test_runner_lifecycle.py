"""Runners' lifecycle on a real ONNX Runtime session: activate / infer / deactivate, the clear error
for infer on an inactive runner, the context manager, and LandmarkDetector's close() and `with`.

The model is a tiny ONNX made here (see tests/test_tensorrt.py's `write_onnx`): one strided
convolution from a 16x16 image to 3 heatmaps of 4x4.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest

from edgeld.core.errors import UserError
from edgeld.runtime import LandmarkDetector
from edgeld.runtime.runners import InactiveRunnerError, OnnxRuntimeRunner
from tests.test_tensorrt import IO, write_onnx

CPU = ["CPUExecutionProvider"]


@pytest.fixture
def onnx_path(tmp_path):
    return write_onnx(tmp_path, "fp32")


def batch(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 1, 16, 16)).astype(np.float32)


def reference(path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=CPU).run(None, {"image": x})[0]


def test_activate_infer_deactivate(onnx_path):
    runner = OnnxRuntimeRunner(onnx_path, CPU, io=IO)
    assert not runner.is_active and runner.session is None  # construction loads nothing
    runner.activate()
    session = runner.session
    assert runner.is_active and runner.name == "onnxruntime-cpu"
    x = batch()
    np.testing.assert_array_equal(runner.infer(x), reference(onnx_path, x))
    runner.activate()
    assert runner.session is session  # activating an active runner is a no-op
    runner.deactivate()
    assert not runner.is_active and runner.session is None
    runner.deactivate()  # and so is deactivating an inactive one
    runner.activate()  # a deactivated runner can be activated again
    np.testing.assert_array_equal(runner.infer(x), reference(onnx_path, x))
    runner.deactivate()


def test_infer_on_an_inactive_runner_is_a_clear_error(onnx_path):
    runner = OnnxRuntimeRunner(onnx_path, CPU)
    with pytest.raises(InactiveRunnerError, match="onnxruntime runner is not active: call activate"):
        runner.infer(batch())
    assert runner.session is None  # it did not activate behind the caller's back
    with runner:
        runner.infer(batch())
    with pytest.raises(InactiveRunnerError, match="not active"):
        runner.infer(batch())
    assert not isinstance(InactiveRunnerError("x"), UserError)  # a programming error: exit code 1


def test_context_manager_activates_and_always_deactivates(onnx_path):
    x = batch(3)
    with OnnxRuntimeRunner(onnx_path, CPU, io=IO) as runner:
        assert runner.is_active
        np.testing.assert_array_equal(runner.infer(x), reference(onnx_path, x))
    assert not runner.is_active
    with pytest.raises(ZeroDivisionError):
        with runner:
            assert runner.is_active
            1 / 0
    assert not runner.is_active  # deactivated on the way out of an exception too


def test_failed_activation_leaves_the_runner_inactive(onnx_path):
    other = dataclasses.replace(IO, landmarks=("a", "b"))  # a manifest that is not this graph's
    runner = OnnxRuntimeRunner(onnx_path, CPU, io=other)
    with pytest.raises(UserError, match="not the model its manifest describes"):
        runner.activate()
    assert not runner.is_active
    with pytest.raises(UserError, match="not the model its manifest describes"):
        with runner:
            pass


def test_detector_is_ready_after_construction_and_closes(onnx_path):
    image = np.random.default_rng(1).integers(0, 255, (40, 30), dtype=np.uint8)
    detector = LandmarkDetector(onnx_path, providers=CPU)
    expected = detector.detect(image)  # ready to use, as README's API example does
    assert detector.runner.is_active
    detector.close()
    assert not detector.runner.is_active
    with pytest.raises(InactiveRunnerError):
        detector.detect(image)
    with detector as reopened:  # `with` activates again and closes at the end
        assert reopened is detector
        np.testing.assert_array_equal(detector.detect(image).landmarks_px, expected.landmarks_px)
    assert not detector.runner.is_active


def test_detector_close_deactivates_its_refiner_chain(onnx_path):
    # the same graph serves as a refinement stage: 16x16 patches from the source image as is
    patch_io = dataclasses.replace(IO, patch_size=16, patch_factor=1)

    def stage(refiner=None) -> LandmarkDetector:
        return LandmarkDetector(runner=OnnxRuntimeRunner(onnx_path, CPU, io=patch_io), io=patch_io,
                                refiner=refiner)

    fine = stage()
    coarse = stage(fine)
    image = np.random.default_rng(2).integers(0, 255, (40, 30), dtype=np.uint8)
    with LandmarkDetector(onnx_path, providers=CPU, refiner=coarse) as detector:
        detection = detector.detect(image)
        assert detection.landmarks_px.shape == (3, 2)
        assert all(d.runner.is_active for d in (detector, coarse, fine))
    assert not any(d.runner.is_active for d in (detector, coarse, fine))
    with detector:  # reopening reopens the whole chain
        np.testing.assert_array_equal(detector.detect(image).landmarks_px, detection.landmarks_px)
    detector.close()
    detector.close()  # idempotent
