"""One runtime interface on the device: pick a backend from the artifact, `predict` probabilities.

`open_runtime(bundle)` chooses the best artifact the bundle lists (and this machine can run),
builds the interpreter / session / compiled model once, and checks the model against the
bundle (input size, number of classes). `Runtime.predict(batch)` takes float32 NHWC already
normalised per the bundle spec and returns (N, n_classes) float32 probabilities, calibrated
with the bundle's temperature (`core.temperature`) when it has one, whatever the backend and
whatever the model's own input/output types (int8/uint8 TFLite models are quantized and
dequantized here). The artifact's declared `output_kind` says whether its rows
are probabilities or logits (softmaxed row by row); a bundle written before the declaration
existed is probed once at load, never per batch (`core.output_kind`).

Backends, imported lazily (never TensorFlow), one class each: `TFLiteRuntime` (`litert`),
`TFLiteRuntimeLegacy` (`tflite-runtime`: 32-bit Pi OS, numpy<2), `OnnxRuntime` (`onnxruntime`;
`onnxruntime-gpu` with TensorRT/CUDA on a Jetson) and `OpenVinoRuntime` (`openvino`). Which
formats each loads, its package, install hint and rank in `auto` are rows of
`core.vocab.FORMAT_TABLE`; a class registers under its `name` with `@backend`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import platform
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.bundle import Artifact, Bundle
from wbc_edge.core.cpu import usable_cores
from wbc_edge.core.errors import BundleError, WbcError, first_line
from wbc_edge.core.limits import check_threads
from wbc_edge.core.output_kind import OutputKind, apply_output_kind, infer_output_kind, probe_batch
from wbc_edge.core.preprocess import QuantParams, quantize
from wbc_edge.core.telemetry import disable_openvino_telemetry
from wbc_edge.core.temperature import calibrate
from wbc_edge.core.vocab import FORMAT_RUNTIMES, PRECISION_ORDER, RUNTIME_TABLE, RUNTIMES

log = logging.getLogger(__name__)

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class TensorInfo:
    """What the runtime needs to know about the model's input or output tensor."""

    shape: tuple[int | None, ...]  # None for a dynamic dimension
    dtype: str  # numpy dtype name: float32, float16, int8, uint8
    quant: QuantParams | None = None


_BACKENDS: dict[str, type[Runtime]] = {}  # runtime name -> class, filled by @backend


def backend(cls: type[Runtime]) -> type[Runtime]:
    """Register a backend class under its `name` (a runtime of `core.vocab.RUNTIME_TABLE`)."""
    _BACKENDS[cls.name] = cls
    return cls


class Runtime(ABC):
    """A loaded model: `predict(batch) -> probabilities`. Build once, call per frame."""

    name: str = ""  # the backend: a runtime of core.vocab.RUNTIME_TABLE

    def __init__(self, bundle: Bundle, artifact: Artifact, threads: int | None) -> None:
        self.bundle = bundle
        self.artifact = artifact
        self.path = bundle.artifact_path(artifact)
        self.threads = threads
        self.classes = list(bundle.classes)
        self.inference_precision = artifact.precision  # what actually runs; backends refine it
        self.device = "CPU"
        self._load()
        self._check_against_bundle()
        self.output_kind: OutputKind = artifact.output_kind or self._probe_output_kind()

    # ------------------------------------------------------------------ backend hooks
    @abstractmethod
    def _load(self) -> None:
        """Build the interpreter/session once; set self.input_info and self.output_info."""

    @abstractmethod
    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run a batch already in the model's input dtype; return the raw output."""

    # ------------------------------------------------------------------ public API
    @property
    def precision(self) -> str:
        """The artifact's precision as listed in the bundle (fp32, fp16, dynamic, int8)."""
        return self.artifact.precision

    @property
    def input_precision(self) -> str:
        """The model's input tensor type (float32, int8, uint8, ...)."""
        return self.input_info.dtype

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """One line for logs: backend, artifact, precisions, device."""
        return (
            f"{self.name} on {self.device}: {self.artifact.file} ({self.precision}, "
            f"input {self.input_precision}, runs {self.inference_precision}, "
            f"output {self.output_kind}, threads {self.threads or 'default'})"
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """float32 NHWC normalised per the bundle spec -> (N, n_classes) float32 probabilities."""
        x = self._check_batch(batch)
        if x.shape[0] == 0:
            return np.zeros((0, self.n_classes), np.float32)
        fixed = self.input_info.shape[0]
        if fixed is None or fixed == x.shape[0]:
            raw = self._run(self._to_input(x))
        else:  # a model with a fixed batch size (usually 1): feed it in chunks
            chunks = [x[i : i + fixed] for i in range(0, x.shape[0], fixed)]
            raw = np.concatenate([self._run_padded(c, fixed) for c in chunks])
        return self._probabilities(raw, x.shape[0])

    def model_inputs(self, batch: np.ndarray) -> list[np.ndarray]:
        """The tensors `predict` would hand the backend for this batch (model dtype and batch)."""
        x = self._check_batch(batch)
        fixed = self.input_info.shape[0]
        if x.shape[0] == 0:
            return []
        if fixed is None or fixed == x.shape[0]:
            return [self._to_input(x)]
        chunks = [x[i : i + fixed] for i in range(0, x.shape[0], fixed)]
        pad = [np.concatenate([c, np.repeat(c[-1:], fixed - len(c), 0)]) for c in chunks]
        return [self._to_input(c) for c in pad]

    def run_model(self, x: np.ndarray) -> np.ndarray:
        """The backend call alone on one `model_inputs` tensor: the bare interpreter's cost."""
        return self._run(x)

    def _probabilities(self, raw: np.ndarray, n: int) -> np.ndarray:
        out = self._from_output(raw)
        if out.shape != (n, self.n_classes):
            raise BundleError(
                f"{self.artifact.file}: the model returned shape {out.shape}, expected "
                f"({n}, {self.n_classes}) for {self.n_classes} classes",
                self.bundle.path,
            )
        return calibrate(apply_output_kind(out, self.output_kind), self.temperature)

    @property
    def temperature(self) -> float | None:
        """The bundle's calibration temperature (None: the model's own probabilities)."""
        cm = self.bundle.count_model
        return None if cm is None else cm.temperature

    def _probe_output_kind(self) -> OutputKind:
        """An artifact of an old bundle declares no output kind: decide it once, here, from a
        fixed probe batch (a softmax makes every row sum to 1, whatever the input)."""
        x = probe_batch(self.bundle.preprocessing)
        fixed = self.input_info.shape[0]
        if fixed is not None:
            x = x[:fixed] if fixed <= len(x) else np.repeat(x[:1], fixed, axis=0)
        return infer_output_kind(self._from_output(self._run(self._to_input(x))))

    @property
    def output_kind_note(self) -> str | None:
        """What to tell people when the bundle declares no output kind (None: it does); the
        CLI logs it after the runtime's native chatter is no longer hidden."""
        if self.artifact.output_kind is not None:
            return None
        return (
            f"{self.artifact.file} declares no output kind (a bundle from before schema 2): "
            f"decided once at load from a probe batch: {self.output_kind} (wbc-convert or "
            "tools/upgrade_bundle.py records it)"
        )

    def close(self) -> None:  # noqa: B027 - backends without resources need nothing here
        """Release the model (the object is unusable afterwards)."""

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def _run_padded(self, chunk: np.ndarray, size: int) -> np.ndarray:
        n = chunk.shape[0]
        if n < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - n, axis=0)])
        return self._run(self._to_input(chunk))[:n]

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        spec = self.bundle.preprocessing
        want = (spec.height, spec.width, 3)
        x = np.asarray(batch)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != want:
            raise WbcError(f"predict() takes a batch (N, {want[0]}, {want[1]}, 3), got {x.shape}")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _to_input(self, x: np.ndarray) -> np.ndarray:
        info = self.input_info
        if info.quant is not None:
            return quantize(x, info.quant)
        return x.astype(info.dtype, copy=False)

    def _from_output(self, raw: np.ndarray) -> np.ndarray:
        info = self.output_info
        raw = np.asarray(raw)
        if info.quant is not None:
            raw = (raw.astype(np.float32) - info.quant.zero_point) * np.float32(info.quant.scale)
        return raw.reshape(raw.shape[0], -1).astype(np.float32, copy=False)

    def _check_against_bundle(self) -> None:
        spec = self.bundle.preprocessing
        want = (spec.height, spec.width, 3)
        got = tuple(self.input_info.shape[1:])
        if len(got) != 3 or any(g is not None and g != w for g, w in zip(got, want, strict=True)):
            raise BundleError(
                f"{self.artifact.file}: the model takes input {_dims(got)} but the bundle's input "
                f"is {_dims(want)}",
                self.bundle.path,
            )
        width = self.output_info.shape[-1] if self.output_info.shape else None
        if width is not None and width != self.n_classes:
            raise BundleError(
                f"classes has {self.n_classes} names but {self.artifact.file} outputs {width}",
                self.bundle.path,
            )


# ---------------------------------------------------------------------------- TFLite


@backend
class TFLiteRuntime(Runtime):
    """LiteRT (`ai_edge_litert`) or the legacy `tflite_runtime` interpreter."""

    name = "litert"

    def _load(self) -> None:
        mod = _import(self.name)
        try:
            self._interp = mod.Interpreter(model_path=str(self.path), num_threads=self.threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BundleError(
                f"{self.artifact.file}: {self.name} cannot load it ({first_line(exc)})",
                self.bundle.path,
            ) from None
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise BundleError(
                f"{self.artifact.file}: expected one input and one output, got {len(inp)} and "
                f"{len(out)}",
                self.bundle.path,
            )
        self._in, self._out = inp[0], out[0]
        # Feed the batch size the interpreter was allocated with (1 for converted Keras models):
        # resizing per frame would re-plan the graph (and XNNPACK) whenever the cell count moves.
        self._batch = int(self._in["shape"][0])
        info = _tflite_info(self._in)
        self.input_info = TensorInfo((self._batch, *info.shape[1:]), info.dtype, info.quant)
        self.output_info = _tflite_info(self._out)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self._batch:
            self._interp.resize_tensor_input(self._in["index"], list(x.shape))
            self._interp.allocate_tensors()
            self._batch = x.shape[0]
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"]).copy()


@backend
class TFLiteRuntimeLegacy(TFLiteRuntime):
    name = "tflite-runtime"

    # _import() refuses it when TensorFlow is loaded: the two clash in one process.


def _tflite_info(detail: dict[str, Any]) -> TensorInfo:
    sig = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in sig)
    dtype = np.dtype(detail["dtype"]).name
    scale, zero = detail.get("quantization", (0.0, 0))
    quant = QuantParams(float(scale), int(zero), dtype) if dtype in ("int8", "uint8") else None
    if quant is not None and quant.scale == 0:
        quant = None
    return TensorInfo(shape, dtype, quant)


# ---------------------------------------------------------------------------- ONNX Runtime


@backend
class OnnxRuntime(Runtime):
    """ONNX Runtime; TensorRT and CUDA execution providers first where installed (Jetson)."""

    name = "onnxruntime"

    def _load(self) -> None:
        ort = _import(self.name)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        available = ort.get_available_providers()
        providers: list[Any] = [
            p for p in (*_GPU_PROVIDERS, "CPUExecutionProvider") if p in available
        ]
        if "TensorrtExecutionProvider" in providers:  # build the TensorRT engine once, not per run
            providers[0] = ("TensorrtExecutionProvider", _tensorrt_options(self.artifact))
        try:
            self._sess = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(
                f"{self.artifact.file}: onnxruntime cannot load it ({first_line(exc)})",
                self.bundle.path,
            ) from None
        self.providers = self._sess.get_providers()
        gpu = [p for p in self.providers if p in _GPU_PROVIDERS]
        self.device = gpu[0].replace("ExecutionProvider", "") if gpu else "CPU"
        inp, out = self._sess.get_inputs(), self._sess.get_outputs()
        if len(inp) != 1 or len(out) != 1:
            raise BundleError(
                f"{self.artifact.file}: expected one input and one output, got {len(inp)} and "
                f"{len(out)}",
                self.bundle.path,
            )
        self._in_name, self._out_name = inp[0].name, out[0].name
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in inp[0].shape)
        self._nchw = len(shape) == 4 and shape[1] == 3 and shape[3] != 3
        if self._nchw:
            shape = (shape[0], shape[2], shape[3], shape[1])
        self.input_info = TensorInfo(shape, _ort_dtype(inp[0].type))
        out_shape = tuple(d if isinstance(d, int) and d > 0 else None for d in out[0].shape)
        self.output_info = TensorInfo(out_shape, _ort_dtype(out[0].type))

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return self._sess.run([self._out_name], {self._in_name: x})[0]


def _tensorrt_options(artifact: Artifact) -> dict[str, Any]:
    """Cache TensorRT engines under ~/.cache/wbc-edge/tensorrt/<artifact hash>."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = base / "wbc-edge" / "tensorrt" / artifact.sha256[:16]
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return {}
    return {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}


def _ort_dtype(type_name: str) -> str:
    names = {"tensor(float)": "float32", "tensor(float16)": "float16"}
    names.update({"tensor(int8)": "int8", "tensor(uint8)": "uint8"})
    return names.get(type_name, "float32")


# ---------------------------------------------------------------------------- OpenVINO


@backend
class OpenVinoRuntime(Runtime):
    """OpenVINO IR (`.xml` + `.bin`) on the CPU; fp32 artifacts are kept in f32."""

    name = "openvino"

    def _load(self) -> None:
        core = _ov_core()
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:  # openvino raises RuntimeError subclasses and others
            raise BundleError(
                f"{self.artifact.file}: openvino cannot read it ({first_line(exc)})",
                self.bundle.path,
            ) from None
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise BundleError(
                f"{self.artifact.file}: expected one input and one output, got "
                f"{len(model.inputs)} and {len(model.outputs)}",
                self.bundle.path,
            )
        _make_batch_dynamic(model)
        config: dict[str, Any] = {}
        if self.artifact.precision == "fp32" or not _native_fp16(core):
            # Never bf16 by default: on x86 CPUs with bf16 the plugin would pick it for fp16 and
            # int8 artifacts alike, and bf16's 8-bit mantissa flips close calls (measured on
            # EfficientNet-Lite0: fp16 artifact 0.990 agreement in bf16). ARM CPUs with native
            # fp16 (Pi 5, Jetson) keep the plugin's f16 for fp16/int8 artifacts.
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        try:
            self._compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:  # the reason is on a later line than "Exception from ..."
            raise BundleError(
                f"{self.artifact.file}: openvino cannot compile it ({first_line(exc)})",
                self.bundle.path,
            ) from None
        self._request = self._compiled.create_infer_request()
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = _ov_type_name(hint)
        self.input_info = TensorInfo(_ov_shape(model.inputs[0]), "float32")
        self.output_info = TensorInfo(_ov_shape(model.outputs[0]), "float32")

    def _run(self, x: np.ndarray) -> np.ndarray:
        result = self._request.infer({0: x})
        return np.asarray(next(iter(result.values()))).copy()

    def close(self) -> None:
        """Free the compiled model now, in this thread: OpenVINO objects finalised later by the
        garbage collector in another thread (a capture thread) can crash the process."""
        self._request = self._compiled = None


@functools.cache
def _ov_core() -> Any:
    """One OpenVINO Core for the process, as OpenVINO recommends. A Core per model left the
    compiled models of dead Cores (and their CPU executors) to the garbage collector, so a
    long session held many at once where a single test holds one; OpenVINO 2026 has been seen
    to fail or crash when a second Core is queried in one process (ultralytics#24224, #25864
    moved to one Core for that)."""
    return _import("openvino").Core()


def _make_batch_dynamic(model: Any) -> None:
    """Let one compiled model take any batch size, where the graph allows it."""
    shape = model.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4 or shape[0].is_dynamic:
        return
    new = [-1, *(d.get_length() if d.is_static else -1 for d in list(shape)[1:])]
    try:
        model.reshape(new)
    except Exception as exc:  # a graph with a fixed batch (e.g. Reshape to [1, ...])
        log.debug("openvino: keeping the fixed batch size (%s)", first_line(exc))


def _ov_shape(port: Any) -> tuple[int | None, ...]:
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        return ()
    return tuple(d.get_length() if d.is_static else None for d in shape)


def _native_fp16(core) -> bool:
    """The CPU plugin computes in fp16 natively (ARM with fp16 arithmetic).

    x86 never counts: an AVX512-FP16 CPU reports FP16 too, but there the plugin's default is
    bf16 (measured on a Xeon with AMX: fp16 and int8 IRs compiled to bf16).
    """
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        return "FP16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # an older plugin without the property: be accurate, not fast
        return False


def _ov_type_name(value: Any) -> str:
    text = str(getattr(value, "type_name", None) or value)
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(text, text)


# ---------------------------------------------------------------------------- choosing


def open_runtime(
    bundle: Bundle,
    artifact: Artifact | None = None,
    runtime: str = "auto",
    precision: str | None = None,
    threads: int | None = None,
) -> Runtime:
    """Load one artifact of the bundle with a runtime.

    With `artifact=None` the bundle's artifacts (status != "failed") that this machine can run
    are ranked: ONNX first where ONNX Runtime has a TensorRT/CUDA provider (a Jetson's GPU),
    then by parity status (ok before unchecked), precision (int8 > fp16 > dynamic > fp32, or
    only `precision` if given) and backend (LiteRT, tflite-runtime, OpenVINO, ONNX Runtime).
    """
    if runtime != "auto" and runtime not in RUNTIMES:
        raise WbcError(f"unknown runtime {runtime!r}; choose auto or one of {', '.join(RUNTIMES)}")
    if threads is not None:
        check_threads(threads)  # 100000 threads would crash the backend, not fail politely
    if threads is None:
        threads, why = usable_cores()
        log.info("inference threads: %d (%s; --threads overrides)", threads, why)
    if artifact is None:
        artifact, name = choose_artifact(bundle, runtime, precision)
    else:
        name = _runtime_for(artifact, runtime, bundle)
    rt = _BACKENDS[name](bundle, artifact, threads)
    log.info("runtime: %s", rt.describe())
    return rt


def choose_artifact(
    bundle: Bundle, runtime: str = "auto", precision: str | None = None
) -> tuple[Artifact, str]:
    """The artifact `open_runtime` would load, and the runtime that would load it."""
    if precision is not None and precision not in PRECISION_ORDER:
        raise WbcError(f"unknown precision {precision!r}; choose one of {PRECISION_ORDER}")
    wanted = RUNTIMES if runtime == "auto" else (runtime,)
    if runtime != "auto":
        _import(runtime)  # a missing package: one line naming what to install
    listed = [
        a
        for a in bundle.artifacts
        if a.format in FORMAT_RUNTIMES
        and a.status != "failed"
        and (precision is None or a.precision == precision)
        and any(r in wanted for r in FORMAT_RUNTIMES[a.format])
    ]
    if not listed:
        raise BundleError(_nothing_to_run(bundle, runtime, precision), bundle.path)
    candidates = []
    for art in listed:
        names = [r for r in FORMAT_RUNTIMES[art.format] if r in wanted and runtime_available(r)]
        if names:
            candidates.append((_rank(art, names[0]), art, names[0]))
    if not candidates:
        need = sorted({r for a in listed for r in FORMAT_RUNTIMES[a.format] if r in wanted})
        hints = "; ".join(f"{r}: {RUNTIME_TABLE[r].install}" for r in need)
        raise WbcError(f"no runtime installed for the artifacts of {bundle.path} ({hints})")
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1], candidates[0][2]


def runtime_available(name: str) -> bool:
    """Whether a runtime's package is importable here (without importing it)."""
    if name == "tflite-runtime" and "tensorflow" in sys.modules:
        return False
    module = RUNTIME_TABLE[name].module.split(".")[0]
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def gpu_providers() -> list[str]:
    """TensorRT/CUDA execution providers of the installed onnxruntime (empty on a Pi)."""
    if not runtime_available("onnxruntime"):
        return []
    ort = _import("onnxruntime")
    return [p for p in _GPU_PROVIDERS if p in ort.get_available_providers()]


def _rank(art: Artifact, runtime: str) -> tuple[int, int, int, int]:
    """Sort key of `auto`: GPU first (a Jetson's TensorRT/CUDA beats any CPU artifact), then
    parity status (an artifact that passed beats an unchecked one of any precision), then
    precision, and backend."""
    on_gpu = runtime == "onnxruntime" and bool(gpu_providers())
    status = 0 if art.status == "ok" else 1
    return (
        0 if on_gpu else 1,
        status,
        PRECISION_ORDER.index(art.precision),
        RUNTIME_TABLE[runtime].rank,
    )


def _runtime_for(artifact: Artifact, runtime: str, bundle: Bundle) -> str:
    names = FORMAT_RUNTIMES.get(artifact.format)
    if names is None:
        raise WbcError(
            f"{artifact.file}: a {artifact.format} artifact cannot run on the device "
            f"(runnable formats: {', '.join(FORMAT_RUNTIMES)})"
        )
    if runtime != "auto":
        if runtime not in names:
            raise WbcError(
                f"{artifact.file}: runtime {runtime} cannot run a {artifact.format} file"
            )
        _import(runtime)  # one-line error naming the package if it is missing
        return runtime
    for name in names:
        if runtime_available(name):
            return name
    raise WbcError(f"no runtime installed for {artifact.file}: {RUNTIME_TABLE[names[0]].install}")


def _nothing_to_run(bundle: Bundle, runtime: str, precision: str | None) -> str:
    have = ", ".join(f"{a.format}/{a.precision}/{a.status}" for a in bundle.artifacts) or "none"
    want = f"runtime {runtime}" + (f", precision {precision}" if precision else "")
    return f"no artifact to run for {want} (artifacts: {have}); run wbc-convert to add one"


def _import(runtime: str) -> Any:
    row = RUNTIME_TABLE[runtime]
    if runtime == "tflite-runtime" and "tensorflow" in sys.modules:
        raise WbcError(
            "tflite-runtime cannot share a process with TensorFlow (already imported here); "
            "use --runtime litert"
        )
    if runtime == "openvino":
        disable_openvino_telemetry()  # a lab device must not call out
    try:
        return importlib.import_module(row.module)
    except ImportError as exc:
        raise WbcError(
            f"runtime {runtime} is not installed ({first_line(exc)}): {row.install}"
        ) from None


def _dims(shape: tuple) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)
