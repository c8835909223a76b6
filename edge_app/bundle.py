"""The model bundle: `models/<name>/bundle.json` plus its artifacts — the contract between stages.

Every stage reads and writes bundles through this module. A malformed bundle raises
BundleError naming the file and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_app.errors import BundleError, first_line
from edge_app.preprocess_spec import PreprocessSpec
from edge_app.vocab import FORMATS, PRECISIONS

SCHEMA_VERSION = 1
BUNDLE_FILE = "bundle.json"
STATUSES = ("ok", "failed", "unchecked")


@dataclass
class Artifact:
    """One model file of the bundle. `file` is relative to the bundle folder."""

    format: str
    precision: str
    file: str
    sha256: str
    size_bytes: int
    status: str = "unchecked"  # set by the parity check: ok | failed | unchecked
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk, an OpenVINO IR's weights file (`weights_size_bytes`) included."""
        extra = self.options.get("weights_size_bytes", 0)
        return int(self.size_bytes + (extra if isinstance(extra, int) else 0))


@dataclass
class Bundle:
    """Everything a stage needs to know about a model, in memory."""

    root: Path
    name: str
    classes: list[str]
    preprocessing: PreprocessSpec
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    parity: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def path(self) -> Path:
        return self.root / BUNDLE_FILE

    def find(self, format: str, precision: str | None = None) -> Artifact | None:
        """The first artifact of a format (and precision, if given)."""
        for art in self.artifacts:
            if art.format == format and precision in (None, art.precision):
                return art
        return None

    def artifact_path(self, art: Artifact) -> Path:
        return self.root / art.file

    def add_artifact(
        self, format: str, precision: str, file: str | Path, **options: Any
    ) -> Artifact:
        """Register (or replace) a file already written inside the bundle folder."""
        rel = Path(file).relative_to(self.root) if Path(file).is_absolute() else Path(file)
        full = self.root / rel
        art = Artifact(format, precision, rel.as_posix(), sha256_file(full), full.stat().st_size)
        art.options = dict(options)
        _check_artifact(art, self.path, len(self.artifacts))
        self.artifacts = [a for a in self.artifacts if a.file != art.file] + [art]
        return art

    def add_metrics(self, split: str, values: dict[str, Any], **extra: Any) -> None:
        """Record metrics measured on a named split (replacing an entry of that split)."""
        entry = {"split": split, **extra, "values": values}
        self.metrics = [m for m in self.metrics if m["split"] != split] + [entry]

    def to_dict(self) -> dict[str, Any]:
        spec = self.preprocessing
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "classes": list(self.classes),
            "input": {
                "height": spec.height,
                "width": spec.width,
                "channels": 3,
                "color_order": spec.color_order,
                "dtype": "float32",
            },
            "preprocessing": spec.to_dict(),
            "provenance": self.provenance,
            "metrics": self.metrics,
            "artifacts": [asdict(a) for a in self.artifacts],
            "parity": self.parity,
        }


def new_bundle(
    root: Path, name: str, classes: list[str], spec: PreprocessSpec, **prov: Any
) -> Bundle:
    """A fresh bundle with provenance stamped (date, git commit) plus `prov`."""
    provenance = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    provenance["git_commit"] = git_commit()
    provenance.update(prov)
    bundle = Bundle(Path(root), name, list(classes), spec, provenance)
    _check_classes(bundle.classes, bundle.path)
    return bundle


def load_bundle(path: Path | str, verify: bool = True) -> Bundle:
    """Read a bundle folder (or its bundle.json); with `verify`, check artifact files and hashes."""
    path = Path(path)
    file = path / BUNDLE_FILE if path.is_dir() or path.suffix != ".json" else path
    if not file.exists():
        raise BundleError("no bundle here (expected a folder holding bundle.json)", file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"not valid JSON ({exc})", file) from None
    bundle = bundle_from_dict(data, file)
    if verify:
        verify_artifacts(bundle)
    return bundle


def bundle_from_dict(data: Any, file: Path) -> Bundle:
    """Validate a parsed bundle.json; raise BundleError naming the first bad field."""
    if not isinstance(data, dict):
        raise BundleError("top level must be a JSON object", file)
    _check_finite(data, file)
    version = _need(data, "schema_version", int, file)
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"schema_version {version} is not supported (this wbc-edge reads {SCHEMA_VERSION})",
            file,
        )
    classes = _need(data, "classes", list, file)
    _check_classes(classes, file)
    try:
        spec = PreprocessSpec.from_dict(_need(data, "preprocessing", dict, file))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"preprocessing: {first_line(exc)}", file) from None
    _check_input(_need(data, "input", dict, file), spec, file)
    metrics = _need(data, "metrics", list, file, default=[])
    for i, m in enumerate(metrics):
        if not isinstance(m, dict) or not isinstance(m.get("split"), str):
            raise BundleError(f"metrics[{i}]: every entry must name its split", file)
    artifacts = []
    for i, a in enumerate(_need(data, "artifacts", list, file, default=[])):
        try:
            art = Artifact(**a)
        except TypeError as exc:
            raise BundleError(f"artifacts[{i}]: {first_line(exc)}", file) from None
        _check_artifact(art, file, i)
        artifacts.append(art)
    return Bundle(
        root=file.parent,
        name=_need(data, "name", str, file),
        classes=classes,
        preprocessing=spec,
        provenance=_need(data, "provenance", dict, file, default={}),
        metrics=metrics,
        artifacts=artifacts,
        parity=_need(data, "parity", dict, file, default={}),
    )


def save_bundle(bundle: Bundle) -> Path:
    """Write bundle.json atomically (a crash never leaves half a file)."""
    bundle.root.mkdir(parents=True, exist_ok=True)
    data = bundle.to_dict()
    _check_finite(data, bundle.path)  # never write a bundle this module would refuse to read
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=bundle.root, prefix=".bundle-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a bundle is shared data
    os.replace(tmp, bundle.path)
    return bundle.path


def verify_artifacts(bundle: Bundle) -> None:
    """Every listed artifact exists with its recorded size and sha256."""
    for i, art in enumerate(bundle.artifacts):
        full = bundle.artifact_path(art)
        if not full.exists():
            raise BundleError(f"artifacts[{i}].file: {art.file} is missing", bundle.path)
        if full.stat().st_size != art.size_bytes or sha256_file(full) != art.sha256:
            raise BundleError(
                f"artifacts[{i}]: {art.file} does not match its recorded sha256/size "
                "(changed after the bundle was written?)",
                bundle.path,
            )


def sha256_file(path: Path) -> str:
    """sha256 of a file, or of all files under a folder (SavedModel) in sorted order."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def git_commit() -> str | None:
    """The commit of the working tree this code runs from, if it is a git checkout."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _need(data: dict, key: str, kind: type, file: Path, default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise BundleError(f"{key}: missing", file)
        return default
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BundleError(f"{key}: expected {kind.__name__}, got {type(value).__name__}", file)
    return value


def _check_finite(value: Any, file: Path, key: str = "") -> None:
    """Refuse NaN and ±Infinity anywhere (json reads them): a NaN scale would make every cell
    the first class."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BundleError(f"{key}: {value} is not a finite number", file)
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, file, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, file, f"{key}[{i}]")


def _check_classes(classes: list, file: Path) -> None:
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise BundleError("classes: must be a non-empty list of names", file)
    if len(set(classes)) != len(classes):
        raise BundleError("classes: names must be unique", file)


def _check_input(inp: dict, spec: PreprocessSpec, file: Path) -> None:
    want = {"height": spec.height, "width": spec.width, "channels": 3}
    want["color_order"] = spec.color_order
    for key, value in want.items():
        if inp.get(key) != value:
            raise BundleError(
                f"input.{key}: {inp.get(key)!r} does not match the preprocessing spec ({value!r})",
                file,
            )


def _check_artifact(art: Artifact, file: Path, i: int) -> None:
    if art.format not in FORMATS:
        raise BundleError(f"artifacts[{i}].format: {art.format!r} not one of {FORMATS}", file)
    if art.precision not in PRECISIONS:
        raise BundleError(
            f"artifacts[{i}].precision: {art.precision!r} not one of {PRECISIONS}", file
        )
    if art.status not in STATUSES:
        raise BundleError(f"artifacts[{i}].status: {art.status!r} not one of {STATUSES}", file)
    if Path(art.file).is_absolute() or ".." in Path(art.file).parts:
        raise BundleError(f"artifacts[{i}].file: {art.file!r} must lie inside the bundle", file)
