"""TensorRT backend: an engine built on this machine, plus its manifest -> heatmap logits (N, K, h, w).

Torch-free like the rest of runtime/. TensorRT and cuda-python import lazily (the `trt` extra);
pycuda stands in for cuda-python only where it is already installed. What needs no GPU (is this
engine for this machine, which batches fit the optimization profile, buffer sizes, what a CUDA
error means for the user) lives in plain functions, unit-tested without hardware.

Written against TensorRT 10/11's documented name-based API (`set_input_shape`,
`set_tensor_address`, `execute_async_v3`) and NVIDIA's cuda-python samples; not run on a GPU here.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeld.core.contract import ModelIO
from edgeld.core.errors import UserError, missing_extra
from edgeld.core.manifest import Manifest
from edgeld.runtime.runners import RunnerBase


@dataclass(frozen=True)
class DeviceFacts:
    """What an engine is tied to: the TensorRT version and the GPU (model, compute capability)."""

    tensorrt: str
    gpu: str
    compute_capability: str  # "8.7"
    cuda_runtime: str | None = None  # the CUDA runtime cuda-python talks to, "12.6"
    cuda_driver: str | None = None  # the newest CUDA the installed driver supports


@dataclass(frozen=True)
class Profile:
    """An optimization profile of the input tensor: the shapes TensorRT accepts, (N, C, H, W)."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def min_batch(self) -> int:
        return self.min[0]

    @property
    def max_batch(self) -> int:
        return self.max[0]


# ---------------------------------------------------------------- decisions that need no GPU

def compute_capability_str(cc: str | Sequence[int]) -> str:
    """"8.7", (8, 7) or "8.7 " -> "8.7": the one spelling manifests and cache keys use."""
    parts = cc.strip().split(".") if isinstance(cc, str) else list(cc)
    try:
        major, minor = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"not a compute capability: {cc!r} (expected 'MAJOR.MINOR')") from None
    return f"{major}.{minor}"


def rebuild_hint(manifest: Manifest) -> str:
    """The command that rebuilds this engine from its ONNX on the machine at hand."""
    onnx = manifest.source.get("onnx") or "MODEL.onnx"
    engine = manifest.artifact.file or "MODEL.engine"
    return f"rebuild it on this machine: edgeld export {onnx} --to engine --out {engine}"


def engine_compatibility(manifest: Manifest, trt_version: str, gpu_name: str,
                         compute_capability: str | Sequence[int]) -> None:
    """Refuse an engine built with another TensorRT version or on another GPU (UserError).

    TensorRT's docs ("Engine Compatibility", support matrix) tie an engine to the TensorRT version
    that built it unless built version-compatible, and to the GPU architecture unless built
    hardware-compatible; edgeld builds neither. Another GPU model of the same architecture may
    load the plan, but with tactics timed on another chip, so it is refused too: engines are
    device artifacts and rebuilding takes minutes.
    """
    built = manifest.sections.get("tensorrt")
    name = manifest.artifact.file
    if manifest.artifact.kind != "engine" or not isinstance(built, dict):
        raise UserError(f"{name}'s manifest does not describe a TensorRT engine; {rebuild_hint(manifest)}")
    here_cc = compute_capability_str(compute_capability)
    problems = []
    if str(built.get("version")) != str(trt_version):
        problems.append(f"TensorRT {built.get('version')} (this machine has TensorRT {trt_version})")
    built_cc = built.get("compute_capability")
    try:
        same_cc = built_cc is not None and compute_capability_str(built_cc) == here_cc
    except ValueError:
        same_cc = False
    if built.get("gpu") != gpu_name or not same_cc:
        problems.append(f"{built.get('gpu')} with compute capability {built_cc} "
                        f"(this machine has {gpu_name}, {here_cc})")
    if problems:
        raise UserError(f"{name} was built for {' and '.join(problems)}; engines only run where they "
                        f"were built: {rebuild_hint(manifest)}")


def check_input_shape(shape: Sequence[int], profile: Profile) -> None:
    """A batch's shape must match the engine's (N, C, H, W) in everything but N."""
    if len(shape) != len(profile.max) or tuple(shape[1:]) != tuple(profile.max[1:]):
        expected = ", ".join(str(d) for d in profile.max[1:])
        raise UserError(f"this engine takes input batches of shape (N, {expected}); got "
                        f"{tuple(shape)}: preprocess images with the engine's manifest")
    if shape[0] < 1:
        raise UserError("empty input batch: give at least one image")


def batch_plan(n: int, profile: Profile) -> list[tuple[int, int, int]]:
    """Chunks (start, stop, run_batch) covering n images within the profile's batch range.

    Batches above the profile's maximum run in chunks of the maximum; a chunk below its minimum
    is padded up to it (the padding's outputs are dropped), so any n >= 1 runs.
    """
    if n < 1:
        raise UserError("empty input batch: give at least one image")
    chunks, start = [], 0
    while start < n:
        stop = min(n, start + profile.max_batch)
        chunks.append((start, stop, max(stop - start, profile.min_batch)))
        start = stop
    return chunks


def tensor_nbytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes of a dense tensor; a negative (unresolved dynamic) dimension is a programming error."""
    if any(int(d) < 0 for d in shape):
        raise ValueError(f"shape {tuple(shape)} has an unresolved dynamic dimension")
    return int(np.prod([int(d) for d in shape], dtype=np.int64)) * np.dtype(dtype).itemsize


# CUDA errors a user can act on; anything else is an internal error (RuntimeError).
_USER_CUDA_ERRORS = {
    "cudaErrorNoDevice": "no CUDA GPU is visible to this process; TensorRT engines need an NVIDIA "
                         "GPU (check the driver and CUDA_VISIBLE_DEVICES)",
    "cudaErrorInsufficientDriver": "the NVIDIA driver is older than the CUDA runtime in use; update "
                                   "the driver or install a cuda-python/TensorRT built for it",
    "cudaErrorMemoryAllocation": "out of GPU memory; close other GPU programs or rebuild the engine "
                                 "with a smaller maximum batch",
}


def cuda_error(name: str, call: str) -> Exception:
    """The exception for CUDA error `name` (e.g. 'cudaErrorNoDevice') raised by `call`."""
    if name in _USER_CUDA_ERRORS:
        return UserError(f"{call} failed ({name}): {_USER_CUDA_ERRORS[name]}")
    return RuntimeError(f"CUDA call {call} failed with {name}")


def cuda_check(result: Any, call: str) -> Any:
    """Unwrap a cuda-python result tuple (error, *values), raising on an error code."""
    err, *values = result
    if int(getattr(err, "value", err)) != 0:
        raise cuda_error(getattr(err, "name", str(err)), call)
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _version_str(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"  # CUDA encodes 12.6 as 12060


# ---------------------------------------------------------------- lazy imports and CUDA access

def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise missing_extra("tensorrt", "trt") from None
    return tensorrt


def import_cudart():
    """cuda-python's runtime API: `cuda.bindings.runtime` (the layout NVIDIA's TensorRT samples use
    now), else the older `cuda.cudart`."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise missing_extra("cuda-python", "trt") from None
    return cudart


class CudaRuntime:
    """Device memory, copies and a stream through cuda-python's runtime API."""

    def __init__(self, cudart):
        self.rt = cudart

    def malloc(self, nbytes: int) -> int:
        return int(cuda_check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        cuda_check(self.rt.cudaFree(ptr), "cudaFree")

    def stream(self):
        return cuda_check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def destroy_stream(self, stream) -> None:
        cuda_check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def to_device(self, ptr: int, host: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        cuda_check(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, stream),
                   "cudaMemcpyAsync")

    def to_host(self, host: np.ndarray, ptr: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_check(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, stream),
                   "cudaMemcpyAsync")

    def synchronize(self, stream) -> None:
        cuda_check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def device_facts(self, trt_version: str) -> DeviceFacts:
        device = cuda_check(self.rt.cudaGetDevice(), "cudaGetDevice")
        prop = cuda_check(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = prop.name.split(b"\0", 1)[0].decode(errors="replace").strip()
        runtime = cuda_check(self.rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
        driver = cuda_check(self.rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        return DeviceFacts(trt_version, name, f"{prop.major}.{prop.minor}",
                           _version_str(int(runtime)), _version_str(int(driver)))


class PyCuda:
    """The same operations through pycuda, used only where cuda-python is absent."""

    def __init__(self):
        import pycuda.driver as drv
        try:  # the primary context, the one TensorRT's runtime-API calls use (pycuda >= 2021.1)
            import pycuda.autoprimaryctx  # noqa: F401
        except ImportError:
            import pycuda.autoinit  # noqa: F401
        self.drv = drv
        self._allocations: dict[int, Any] = {}

    def malloc(self, nbytes: int) -> int:
        allocation = self.drv.mem_alloc(nbytes)
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def stream(self):
        return self.drv.Stream()

    def stream_handle(self, stream) -> int:
        return stream.handle

    def destroy_stream(self, stream) -> None:
        pass  # pycuda destroys a stream with its Python object

    def to_device(self, ptr: int, host: np.ndarray, stream) -> None:
        self.drv.memcpy_htod_async(ptr, host, stream)

    def to_host(self, host: np.ndarray, ptr: int, stream) -> None:
        self.drv.memcpy_dtoh_async(host, ptr, stream)

    def synchronize(self, stream) -> None:
        stream.synchronize()

    def device_facts(self, trt_version: str) -> DeviceFacts:
        device = self.drv.Context.get_device()
        major, minor = device.compute_capability()
        return DeviceFacts(trt_version, device.name().strip(), f"{major}.{minor}", None,
                           _version_str(int(self.drv.get_driver_version())))


def cuda_ops() -> CudaRuntime | PyCuda:
    """cuda-python when installed; pycuda only if it is already there; else the `trt` extra's error."""
    try:
        return CudaRuntime(import_cudart())
    except UserError:
        if importlib.util.find_spec("pycuda") is not None:
            return PyCuda()
        raise


# ---------------------------------------------------------------- the runner

def engine_io(engine, trt, io: ModelIO, path: Path, manifest: dict[str, Any]
              ) -> tuple[list[str], dict[str, np.dtype]]:
    """The engine's I/O tensor names and numpy dtypes; refused (UserError) unless they are the
    manifest's one input and its output, in types numpy can hold."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    if inputs != [io.input_name] or io.output_name not in names:
        raise UserError(f"{path} has inputs {inputs} and outputs "
                        f"{[n for n in names if n not in inputs]}, not '{io.input_name}' -> "
                        f"'{io.output_name}' as its manifest says; {rebuild_hint(manifest)}")
    dtypes = {}
    for n in names:
        try:
            dtypes[n] = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
        except TypeError:  # BF16/FP8/INT4 I/O: numpy has no such type
            raise UserError(f"{path}: tensor '{n}' has type {engine.get_tensor_dtype(n)}, "
                            "which numpy cannot hold; export with float32 inputs and outputs") from None
    return names, dtypes


class TensorRTRunner(RunnerBase):
    """A TensorRT engine on this machine's GPU, refused unless its manifest says it was built here.

    Device buffers are allocated once, for the profile's largest batch; larger batches run in
    chunks. One execution context and one stream: not thread-safe, make one runner per thread.
    `activate()` loads the engine and allocates; `deactivate()` frees; `with runner:` does both.
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | Path):
        self.path = Path(engine_path)
        self.manifest: Manifest | None = None
        self.io: ModelIO | None = None
        self.profile: Profile | None = None
        self._trt = self._cuda = self._runtime = self._engine = self._context = self._stream = None
        self._buffers: dict[str, int] = {}
        self._dtypes: dict[str, np.dtype] = {}

    @property
    def is_active(self) -> bool:
        return self._context is not None

    def activate(self) -> None:
        """Check the engine is for this machine, load it, allocate its buffers (idempotent)."""
        if self._context is not None:
            return
        if not self.path.is_file():
            raise UserError(f"engine file not found: {self.path}")
        manifest = Manifest.read(self.path)
        trt = import_tensorrt()
        cuda = cuda_ops()
        facts = cuda.device_facts(trt.__version__)
        engine_compatibility(manifest, trt.__version__, facts.gpu, facts.compute_capability)
        io = manifest.io

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise UserError(f"TensorRT {trt.__version__} could not load {self.path} (see its log "
                            f"above); {rebuild_hint(manifest)}")
        names, dtypes = engine_io(engine, trt, io, self.path, manifest)
        profile = Profile(*(tuple(int(d) for d in s)
                            for s in engine.get_tensor_profile_shape(io.input_name, 0)))

        context = engine.create_execution_context()
        stream = cuda.stream()
        self._trt, self._cuda, self._runtime, self._engine = trt, cuda, runtime, engine
        self._context, self._stream = context, stream
        self.manifest, self.io, self.profile, self._dtypes = manifest, io, profile, dtypes
        try:
            self._allocate(names)
        except BaseException:
            self.deactivate()
            raise

    def _allocate(self, names: Sequence[str]) -> None:
        """Device buffers for every I/O tensor at the profile's maximum batch, bound to the context."""
        context, cuda = self._context, self._cuda
        if not context.set_input_shape(self.io.input_name, self.profile.max):
            raise RuntimeError(f"TensorRT refused the profile's own maximum shape {self.profile.max}")
        for n in names:
            shape = tuple(context.get_tensor_shape(n))
            self._buffers[n] = cuda.malloc(tensor_nbytes(shape, self._dtypes[n]))
            if not context.set_tensor_address(n, self._buffers[n]):
                raise RuntimeError(f"TensorRT refused the device address of tensor '{n}'")

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, H, W) preprocessed images -> (N, K, h, w) float32 heatmap logits."""
        self.require_active()
        x = np.asarray(batch)
        check_input_shape(x.shape, self.profile)
        x = np.ascontiguousarray(x, dtype=self._dtypes[self.io.input_name])
        outputs = []
        for start, stop, run in batch_plan(len(x), self.profile):
            chunk = x[start:stop]
            if run > len(chunk):
                pad = np.zeros((run - len(chunk),) + chunk.shape[1:], chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            outputs.append(self._execute(chunk)[: stop - start])
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _execute(self, chunk: np.ndarray) -> np.ndarray:
        context, cuda, stream = self._context, self._cuda, self._stream
        name, out = self.io.input_name, self.io.output_name
        if not context.set_input_shape(name, chunk.shape):
            raise RuntimeError(f"TensorRT refused input shape {chunk.shape} inside profile {self.profile}")
        host = np.empty(tuple(context.get_tensor_shape(out)), self._dtypes[out])
        cuda.to_device(self._buffers[name], chunk, stream)
        if not context.execute_async_v3(stream_handle=cuda.stream_handle(stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log above)")
        cuda.to_host(host, self._buffers[out], stream)
        cuda.synchronize(stream)  # also keeps `chunk` alive until its copy has finished
        return host

    def deactivate(self) -> None:
        """Free the device buffers and the stream, drop context, engine and runtime (idempotent)."""
        cuda = self._cuda
        if cuda is not None:
            for ptr in self._buffers.values():
                cuda.free(ptr)
            if self._stream is not None:
                cuda.destroy_stream(self._stream)
        self._buffers = {}
        # the context before the engine before the runtime: each belongs to the next
        self._context = None
        self._engine = None
        self._runtime = None
        self._stream = None
