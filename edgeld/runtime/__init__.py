"""Torch-free inference: artifacts + manifests -> landmarks in pixels and mm.

Never imports torch (a test blocks it); ONNX Runtime and TensorRT are the backends.
"""
from edgeld.runtime.detector import Detection, LandmarkDetector
from edgeld.runtime.manifest import ModelIO

__all__ = ["Detection", "LandmarkDetector", "ModelIO"]
