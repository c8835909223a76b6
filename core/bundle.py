"""The model bundle: `models/<name>/bundle.json` plus its files — the contract between stages.

Every stage reads and writes bundles through this module. The whole file is decoded strictly
(`core.typed_json`): a wrong type, a NaN, a value out of its vocabulary or a missing field
anywhere is one line `bundle.json: artifacts[2].file: expected a string, got 5`, every problem
listed, never a traceback later. Unknown top-level keys are kept and warned about (a newer
writer may add one); unknown keys inside a typed part are refused. Every file a bundle needs
(each artifact's files, an OpenVINO IR's `.bin` included, and the self-test sample) is hashed
when it is added and checked when the bundle is loaded. Each artifact also records the
fingerprint of the classes and preprocessing it was made and checked with (`contract_sha256`):
a class order swapped or a preprocessing step edited in bundle.json afterwards is refused.
Format: docs/bundle.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from wbc_edge.core.bundle_files import file_outside
from wbc_edge.core.bundle_parts import OPEN_PARTS, Status, Thresholds
from wbc_edge.core.class_names import class_name_problem
from wbc_edge.core.digest import sha256_file
from wbc_edge.core.errors import BundleError
from wbc_edge.core.json_limits import read_json
from wbc_edge.core.output_kind import OutputKind
from wbc_edge.core.preprocess_spec import ColorOrder, PreprocessSpec
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.core.temperature import T_RANGE
from wbc_edge.core.typed_json import decode, raise_problems
from wbc_edge.core.vocab import Format, Precision, artifact_key

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: before file lists, output kinds and contract fingerprints
BUNDLE_FILE = "bundle.json"
BUNDLE_BYTES = 8_000_000  # bundle.json is tens of KB; a larger one is not read
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass
class FileHash:
    """One file inside the bundle folder, as recorded: relative path, sha256, size."""

    file: str
    sha256: str
    size_bytes: int


@dataclass
class Artifact:
    """One model of the bundle. `file` (relative to the bundle folder) is what a runtime opens;
    `extra_files` are the other files it needs (an OpenVINO IR's `.bin`)."""

    format: Format
    precision: Precision
    file: str
    sha256: str
    size_bytes: int
    status: Status = "unchecked"
    options: dict[str, Any] = field(default_factory=dict)
    extra_files: list[FileHash] = field(default_factory=list)
    output_kind: OutputKind | None = None  # None: an old bundle; the runtime decides at load
    contract_sha256: str | None = None  # classes + preprocessing it was made for (None: old)

    @property
    def files(self) -> list[FileHash]:
        """Every file this artifact needs, `file` first."""
        return [FileHash(self.file, self.sha256, self.size_bytes), *self.extra_files]

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk of all its files (an OpenVINO IR's weights included)."""
        return sum(f.size_bytes for f in self.files)

    @property
    def key(self) -> str:
        """Its name on the command line and in reports, e.g. `tflite-int8`."""
        return artifact_key(self.format, self.precision)


@dataclass
class SelfTest:
    """The on-device parity sample (`wbc-edge verify`): held-out crops already prepared to the
    model's input (uint8) and the float model's probabilities on them, in one `.npz`."""

    file: str
    sha256: str
    size_bytes: int
    n: int
    source: str  # where the crops came from, in words
    contract_sha256: str


@dataclass
class CalibrationPack(SelfTest):
    """`calibration_pack`: training-side crops prepared to the model's input, in one `.npz`,
    so that INT8 conversion runs on the bundle alone (`convert.calibration_pack`); stored like
    the self-test sample and kept apart from it (the self-test crops are held-out)."""


@dataclass
class CountModel:
    """`count_model` of bundle.json: what turns the model's outputs into a lab's differential.

    `temperature` calibrates every runtime's probabilities (`core.temperature`); `confusion`
    (rows true, columns predicted, out-of-fold source cells, classes in bundle order)
    corrects the differential for the model's known confusions (`core.label_shift`); `source`
    says in words which cells they were measured on."""

    temperature: float
    confusion: list[list[float]]
    source: str
    min_cells: int = 50


@dataclass
class InputSpec:
    """`input` of bundle.json: the model's input tensor, derived from the preprocessing."""

    height: int
    width: int
    channels: int
    color_order: ColorOrder
    dtype: Literal["float32"]


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
    selftest: SelfTest | None = None
    calibration_pack: CalibrationPack | None = None
    quality: dict[str, Any] = field(default_factory=dict)  # numbers/flags/notes, loosely typed
    count_model: CountModel | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, kept
    schema_version: int = SCHEMA_VERSION

    @property
    def path(self) -> Path:
        return self.root / BUNDLE_FILE

    @property
    def contract_sha256(self) -> str:
        """Fingerprint of what every artifact's parity depends on: classes and preprocessing."""
        return contract_sha256(self.classes, self.preprocessing)

    def find(self, format: str, precision: str | None = None) -> Artifact | None:
        """The first artifact of a format (and precision, if given)."""
        for art in self.artifacts:
            if art.format == format and precision in (None, art.precision):
                return art
        return None

    def artifact_path(self, art: Artifact | FileHash | SelfTest) -> Path:
        return self.root / art.file

    def add_artifact(
        self,
        format: str,
        precision: str,
        file: str | Path,
        extra_files: tuple[str | Path, ...] | list[str | Path] = (),
        output_kind: OutputKind | None = None,
        **options: Any,
    ) -> Artifact:
        """Register (or replace) files already written inside the bundle folder: each is
        hashed, and the artifact is stamped with the bundle's classes and preprocessing."""
        main = self.file_hash(file)
        art = Artifact(format, precision, main.file, main.sha256, main.size_bytes)  # type: ignore[arg-type]
        art.options = dict(options)
        art.extra_files = [self.file_hash(f) for f in extra_files]
        art.output_kind = output_kind
        art.contract_sha256 = self.contract_sha256
        problems: list[str] = []
        _check_artifact(art, f"artifacts[{len(self.artifacts)}]", problems)
        _raise(problems, self.path)
        self.artifacts = [a for a in self.artifacts if a.file != art.file] + [art]
        return art

    def file_hash(self, file: str | Path) -> FileHash:
        """The record of a file inside the bundle folder (absolute or relative path)."""
        rel = Path(file).relative_to(self.root) if Path(file).is_absolute() else Path(file)
        full = self.root / rel
        return FileHash(rel.as_posix(), sha256_file(full), full.stat().st_size)

    def change_preprocessing(self, spec: PreprocessSpec) -> None:
        """Change the preprocessing on purpose (`wbc-train colour-step`): the same models, now
        for the new spec, so every artifact is re-stamped and `unchecked`, and the parity
        summary and the self-test sample (prepared with the old spec) are dropped."""
        self.preprocessing = spec
        for art in self.artifacts:
            art.status = "unchecked"
            art.contract_sha256 = self.contract_sha256
        self.parity = {}
        self.selftest = None
        self.calibration_pack = None

    def add_metrics(self, split: str, values: dict[str, Any], **extra: Any) -> None:
        """Record metrics measured on a named split (replacing an entry of that split)."""
        entry = {"split": split, **extra, "values": values}
        self.metrics = [m for m in self.metrics if m["split"] != split] + [entry]

    def thresholds(self) -> Thresholds | None:
        """The parity thresholds recorded by wbc-convert (None: never converted)."""
        t = self.parity.get("thresholds")
        return Thresholds(**t) if isinstance(t, dict) else None

    def to_dict(self) -> dict[str, Any]:
        spec = self.preprocessing
        data: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "classes": list(self.classes),
            "input": asdict(_input_of(spec)),
            "preprocessing": spec.to_dict(),
            "provenance": self.provenance,
            "metrics": self.metrics,
            "artifacts": [asdict(a) for a in self.artifacts],
            "parity": self.parity,
        }
        if self.selftest is not None:
            data["selftest"] = asdict(self.selftest)
        if self.calibration_pack is not None:
            data["calibration_pack"] = asdict(self.calibration_pack)
        if self.quality:
            data["quality"] = self.quality
        if self.count_model is not None:
            data["count_model"] = asdict(self.count_model)
        return {**data, **{k: v for k, v in self.extra.items() if k not in data}}


def new_bundle(
    root: Path, name: str, classes: list[str], spec: PreprocessSpec, **prov: Any
) -> Bundle:
    """A fresh bundle with provenance stamped (date, git commit) plus `prov`."""
    provenance = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    provenance["git_commit"] = git_commit()
    provenance.update(prov)
    bundle = Bundle(Path(root), name, list(classes), spec, provenance)
    problems: list[str] = []
    _check_classes(bundle.classes, problems)
    _raise(problems, bundle.path)
    return bundle


def load_bundle(path: Path | str, verify: bool = True) -> Bundle:
    """Read a bundle folder (or its bundle.json); with `verify`, check every file's hash."""
    path = Path(path)
    file = path / BUNDLE_FILE if path.is_dir() or path.suffix != ".json" else path
    if not file.exists():
        raise BundleError("no bundle here (expected a folder holding bundle.json)", file)
    data = read_json(file, BUNDLE_BYTES, error=BundleError)
    bundle = bundle_from_dict(data, file)
    if verify:
        verify_files(bundle)
    return bundle


# Top-level keys: type, and whether bundle.json must have it.
_TOP: dict[str, tuple[Any, bool]] = {
    "schema_version": (int, True),
    "name": (str, True),
    "classes": (list[str], True),
    "input": (InputSpec, True),
    "preprocessing": (None, True),  # PreprocessSpec.decode
    "provenance": (dict[str, Any], False),  # these four: shapes in core.bundle_parts
    "metrics": (list[dict[str, Any]], False),
    "artifacts": (list[Artifact], False),
    "parity": (dict[str, Any], False),
    "selftest": (SelfTest | None, False),
    "calibration_pack": (CalibrationPack | None, False),
    "quality": (dict[str, Any], False),
    "count_model": (CountModel | None, False),
}


def bundle_from_dict(data: Any, file: Path, warn: bool = True) -> Bundle:
    """Decode a parsed bundle.json; raise BundleError listing every problem, one per line.
    With `warn`, unknown top-level keys and missing fingerprints are logged."""
    if not isinstance(data, dict):
        raise BundleError("top level must be a JSON object", file)
    problems: list[str] = []
    version = decode(int, data.get("schema_version"), "schema_version", problems)
    _raise(problems, file)
    if version not in READABLE_VERSIONS:
        raise BundleError(
            f"schema_version {version} is not supported (this wbc-edge reads "
            f"{', '.join(map(str, READABLE_VERSIONS))})",
            file,
        )
    if version == 1:
        data = migrate_v1(data)
    got: dict[str, Any] = {}
    for key, (kind, required) in _TOP.items():
        if key not in data:
            if required:
                problems.append(f"{key}: missing")
            continue
        if kind is None:
            got[key] = PreprocessSpec.decode(data[key], key, problems)
        elif key in OPEN_PARTS:  # checked against its declared shape, kept as parsed
            decode(OPEN_PARTS[key], data[key], key, problems)
            got[key] = data[key]
        else:
            got[key] = decode(kind, data[key], key, problems)
    extra = {k: decode(Any, v, k, problems) for k, v in data.items() if k not in _TOP}
    _check_parts(got, problems)
    _raise(problems, file)
    for key in extra if warn else ():
        log.warning("%s: unknown top-level key %r kept as it is (a newer writer?)", file, key)
    bundle = Bundle(
        root=file.parent,
        name=got["name"],
        classes=got["classes"],
        preprocessing=got["preprocessing"],
        provenance=got.get("provenance", {}),
        metrics=got.get("metrics", []),
        artifacts=got.get("artifacts", []),
        parity=got.get("parity", {}),
        selftest=got.get("selftest"),
        calibration_pack=got.get("calibration_pack"),
        quality=got.get("quality", {}),
        count_model=got.get("count_model"),
        extra=extra,
    )
    _check_contract(bundle, problems, warn, required=version >= 2)
    _raise(problems, file)
    return bundle


def migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 → 2 in memory: an OpenVINO artifact's `weights_file/sha256/size_bytes` options
    become its `extra_files` (so the `.bin` is checked too). Output kind and contract stay
    unknown (None): the runtime decides the kind once at load; a class swap cannot be seen."""
    data = dict(data)
    arts = data.get("artifacts")
    if not isinstance(arts, list):
        return data
    out = []
    for a in arts:
        opts = a.get("options") if isinstance(a, dict) else None
        keys = ("weights_file", "weights_sha256", "weights_size_bytes")
        if isinstance(opts, dict) and all(k in opts for k in keys) and "extra_files" not in a:
            a = dict(a, options={k: v for k, v in opts.items() if k not in keys})
            names = ("file", "sha256", "size_bytes")
            a["extra_files"] = [{n: opts[k] for n, k in zip(names, keys, strict=True)}]
        out.append(a)
    data["artifacts"] = out
    return data


def save_bundle(bundle: Bundle) -> Path:
    """Write bundle.json atomically (a crash never leaves half a file), as schema 2; a bundle
    read as schema 1 whose artifacts still lack a fingerprint stays schema 1 (schema 2 requires
    one; tools/upgrade_bundle.py records them)."""
    bundle.root.mkdir(parents=True, exist_ok=True)
    stamped = all(a.contract_sha256 is not None for a in bundle.artifacts)
    bundle.schema_version = SCHEMA_VERSION if stamped else 1
    data = bundle.to_dict()
    bundle_from_dict(data, bundle.path, warn=False)  # never write what this module would refuse
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(bundle.path, text)


def verify_files(bundle: Bundle) -> None:
    """Every file of every artifact, and the self-test sample, exists with its recorded size and
    sha256; BundleError lists each one that does not."""
    records: list[tuple[str, FileHash | SelfTest]] = []
    for i, art in enumerate(bundle.artifacts):
        records.append((f"artifacts[{i}]", FileHash(art.file, art.sha256, art.size_bytes)))
        records += [(f"artifacts[{i}].extra_files[{j}]", f) for j, f in enumerate(art.extra_files)]
    if bundle.selftest is not None:
        records.append(("selftest", bundle.selftest))
    if bundle.calibration_pack is not None:
        records.append(("calibration_pack", bundle.calibration_pack))
    problems = []
    for where, rec in records:
        full = bundle.artifact_path(rec)
        outside = file_outside(bundle.root, full)
        if outside:
            problems.append(f"{where}.file: {rec.file} {outside}")
        elif not full.is_file() and not full.is_dir():
            problems.append(f"{where}.file: {rec.file} is missing")
        elif _size(full) != rec.size_bytes or sha256_file(full) != rec.sha256:
            problems.append(
                f"{where}: {rec.file} does not match its recorded sha256/size "
                "(changed after the bundle was written?)"
            )
    _raise(problems, bundle.path)


def contract_sha256(classes: list[str], spec: PreprocessSpec) -> str:
    """sha256 of the classes (in order), the input and the preprocessing, as canonical JSON."""
    what = {
        "classes": list(classes),
        "input": asdict(_input_of(spec)),
        "preprocessing": spec.to_dict(),
    }
    text = json.dumps(what, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


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


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _input_of(spec: PreprocessSpec) -> InputSpec:
    return InputSpec(spec.height, spec.width, 3, spec.color_order, "float32")


def _raise(problems: list[str], file: Path) -> None:
    """BundleError with one line per problem, each naming the file."""
    raise_problems(problems, file, BundleError)


def _check_parts(got: dict[str, Any], problems: list[str]) -> None:
    """What types alone cannot say: names unique, input = preprocessing, files inside."""
    if got.get("classes") is not None:
        _check_classes(got["classes"], problems)
    inp, spec = got.get("input"), got.get("preprocessing")
    if inp is not None and spec is not None:
        for key, want in asdict(_input_of(spec)).items():
            if getattr(inp, key) != want:
                problems.append(
                    f"input.{key}: {getattr(inp, key)!r} does not match the preprocessing "
                    f"({want!r})"
                )
    for i, art in enumerate(got.get("artifacts") or []):
        if art is not None:
            _check_artifact(art, f"artifacts[{i}]", problems)
    if got.get("selftest") is not None:
        _check_record(got["selftest"], "selftest", problems)
        if got["selftest"].n < 1:
            problems.append("selftest.n: must be at least 1")
    if got.get("calibration_pack") is not None:
        _check_record(got["calibration_pack"], "calibration_pack", problems)
        if got["calibration_pack"].n < 1:
            problems.append("calibration_pack.n: must be at least 1")
    if got.get("count_model") is not None:
        _check_count_model(got["count_model"], len(got.get("classes") or []), problems)


def _check_count_model(cm: CountModel, k: int, problems: list[str]) -> None:
    lo, hi = T_RANGE
    if not lo <= cm.temperature <= hi:
        problems.append(f"count_model.temperature: {cm.temperature} is outside [{lo}, {hi}]")
    rows = cm.confusion
    if len(rows) != k or any(len(r) != k for r in rows):
        problems.append(f"count_model.confusion: must be {k} rows of {k} counts (one per class)")
    elif any(v < 0 for r in rows for v in r) or any(sum(r) == 0 for r in rows):
        problems.append("count_model.confusion: counts must be non-negative, every row some")
    if cm.min_cells < 1:
        problems.append("count_model.min_cells: must be at least 1")


def _check_classes(classes: list, problems: list[str]) -> None:
    if not classes or not all(isinstance(c, str) and c for c in classes):
        problems.append("classes: must be a non-empty list of names")
    elif len(set(classes)) != len(classes):
        problems.append("classes: names must be unique")
    else:
        problems += [f"classes: {p}" for p in map(class_name_problem, classes) if p]


def _check_artifact(art: Artifact, where: str, problems: list[str]) -> None:
    for i, rec in enumerate(art.files):
        _check_record(rec, where if i == 0 else f"{where}.extra_files[{i - 1}]", problems)
    value = art.contract_sha256
    if value is not None and not _HEX64.fullmatch(value):
        problems.append(f"{where}.contract_sha256: {value!r} is not a sha256 (64 hex digits)")


def _check_record(rec: FileHash | SelfTest, where: str, problems: list[str]) -> None:
    if Path(rec.file).is_absolute() or ".." in Path(rec.file).parts or not rec.file:
        problems.append(f"{where}.file: {rec.file!r} must lie inside the bundle")
    if not _HEX64.fullmatch(rec.sha256):
        problems.append(f"{where}.sha256: {rec.sha256!r} is not a sha256 (64 hex digits)")
    if rec.size_bytes < 0:
        problems.append(f"{where}.size_bytes: {rec.size_bytes} is negative")


def _check_contract(bundle: Bundle, problems: list[str], warn: bool, required: bool) -> None:
    """Artifacts (and the self-test sample) made for other classes or preprocessing; from
    schema 2 on (`required`) every artifact must carry its fingerprint."""
    now = bundle.contract_sha256
    stamped = [
        (f"artifacts[{i}]", a.file, a.contract_sha256) for i, a in enumerate(bundle.artifacts)
    ]
    if bundle.selftest is not None:
        stamped.append(("selftest", bundle.selftest.file, bundle.selftest.contract_sha256))
    if bundle.calibration_pack is not None:
        pack = bundle.calibration_pack
        stamped.append(("calibration_pack", pack.file, pack.contract_sha256))
    for where, file, recorded in stamped:
        if recorded is None and required:
            problems.append(
                f"{where}.contract_sha256: missing for {file} (schema 2 records it for every "
                "artifact; run tools/upgrade_bundle.py on a bundle.json you trust)"
            )
        elif recorded is not None and recorded != now:
            problems.append(
                f"{where}.contract_sha256: {file} was made and checked for other classes or "
                "preprocessing than bundle.json now gives (class order changed? a step "
                "edited?); restore bundle.json, or re-run wbc-convert from a matching model"
            )
    if warn and any(r is None for _, _, r in stamped):
        log.info(
            "%s: some artifacts record no contract fingerprint (schema 1): a changed class "
            "order cannot be detected for them (tools/upgrade_bundle.py records it)",
            bundle.path,
        )
