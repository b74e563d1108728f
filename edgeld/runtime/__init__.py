"""Torch-free inference: artifacts + manifests -> landmarks in pixels and mm.

Imports only edgeld.core and never torch (import-linter contracts and a test that blocks torch);
ONNX Runtime and TensorRT are the backends.
"""
from edgeld.runtime.detector import Detection, LandmarkDetector

__all__ = ["Detection", "LandmarkDetector"]
