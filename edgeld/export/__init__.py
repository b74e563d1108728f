"""From a trained checkpoint to deployable artifacts (ONNX now; FP16, INT8, TensorRT later)."""
