"""Representative (calibration) images and the held-out parity set, from real labelled images.

By default both come from the bundle's own data: its provenance names the data root
(`data`) and the split manifest inside the bundle (`split_manifest`, CSV path,class,group,side).
Calibration takes the train side, stratified over classes and source cells (groups); parity
takes the held-out sides (val/test). A class-folder tree can replace either (`--calib-data`,
`--parity-data`). Every image goes through the bundle's one preprocessing function.
Never random noise.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wbc_edge.convert.held_out import Key, Seen, drop_seen, key_of
from wbc_edge.convert.source import Calibration, HeldOut
from wbc_edge.core.bundle import Bundle
from wbc_edge.core.colour import apply_lut
from wbc_edge.core.dataset.cell_groups import read_groups_csv, shipped_groups_path
from wbc_edge.core.dataset.data import list_images, run_table
from wbc_edge.core.dataset.splits import read_manifest
from wbc_edge.core.decode import decode_image
from wbc_edge.core.errors import BundleError, DataError, ImageError, NoCellFound, WbcError
from wbc_edge.core.preprocess import preprocess
from wbc_edge.core.preprocess_spec import PreprocessSpec

log = logging.getLogger(__name__)

DEFAULT_CALIB_IMAGES = 300
HELD_OUT_SIDES = ("val", "test")


@dataclass(frozen=True)
class Labelled:
    """One candidate image: path relative to `root`, class name, source-cell group."""

    path: str
    label: str
    group: str


# --------------------------------------------------------------------------- where images are


def bundle_data(bundle: Bundle, data_root: Path | None = None) -> tuple[Path, Path]:
    """(data root, split manifest): the root named by `data_root` (--data-root) or the
    bundle's provenance, the manifest inside the bundle."""
    manifest = bundle_manifest(bundle)
    if manifest is None:
        raise BundleError(
            "provenance names no split manifest (split_manifest or split.manifest); "
            "pass --calib-data and --parity-data",
            bundle.path,
        )
    return training_root(bundle, data_root), manifest


def bundle_manifest(bundle: Bundle) -> Path | None:
    """The split manifest the bundle's provenance names (None if it names none)."""
    prov = bundle.provenance
    manifest = prov.get("split_manifest")
    if manifest is None and isinstance(prov.get("split"), dict):
        manifest = prov["split"].get("manifest")
    if not isinstance(manifest, str):
        return None
    path = Path(manifest) if Path(manifest).is_absolute() else bundle.root / manifest
    if not path.is_file():
        raise DataError("the bundle's split manifest is missing", path)
    return path


def recorded_root(bundle: Bundle) -> str | None:
    """The data root as the bundle records it (as its user gave it), or None."""
    data = bundle.provenance.get("data")  # a path, or {"root": path, ...} as wbc-train writes
    if isinstance(data, dict):
        data = data.get("root") or data.get("path")
    return data if isinstance(data, str) else None


def training_root(bundle: Bundle, data_root: Path | None = None) -> Path:
    """The folder the manifest's paths are relative to: `data_root`, else the recorded root
    (relative to the working folder, else to the bundle)."""
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise DataError("--data-root is not a folder", data_root)
        return Path(data_root)
    recorded = recorded_root(bundle)
    if recorded is None:
        raise BundleError(
            "provenance names no data root (data or data.root); pass --data-root, or "
            "--calib-data and --parity-data",
            bundle.path,
        )
    root = Path(recorded)
    if not root.is_absolute() and not root.is_dir() and (bundle.root / root).is_dir():
        root = bundle.root / root
    if not root.is_dir():
        raise DataError(
            "the bundle's training data is not here; pass --data-root with the folder the "
            "split manifest's paths are relative to (or --calib-data and --parity-data)",
            root,
        )
    return root


def _manifest_name(bundle: Bundle) -> str:
    manifest = bundle_manifest(bundle)
    return manifest.name if manifest is not None else "(none)"


def manifest_side(
    bundle: Bundle, sides: Sequence[str] | None, data_root: Path | None = None
) -> tuple[Path, list[Labelled]]:
    """Rows of the bundle's manifest on the given sides (None: every held-out side)."""
    root, manifest = bundle_data(bundle, data_root)
    rows = read_manifest(manifest)
    if sides is None:
        chosen = [r for r in rows if r.side in HELD_OUT_SIDES] or [
            r for r in rows if r.side != "train"
        ]
        what = "held-out (val/test)"
    else:
        chosen = [r for r in rows if r.side in sides]
        what = "/".join(sides)
    if not chosen:
        raise DataError(
            f"has no {what} rows; pass a folder with --calib-data/--parity-data", manifest
        )
    if not (root / chosen[0].path).is_file():  # a wrong root, not one unreadable file
        raise DataError(
            f"holds no {chosen[0].path} (named in {manifest.name}); pass --data-root with the "
            "folder its paths are relative to",
            root,
        )
    return root, [Labelled(r.path, r.label, r.group) for r in chosen]


def folder_images(folder: Path) -> tuple[Path, list[Labelled]]:
    """A class-folder tree; every file is its own group."""
    images = list_images(folder)
    rows = [Labelled(r.path.as_posix(), r.label, r.path.as_posix()) for r in images.records]
    return images.root, rows


def seen_images(
    bundle: Bundle,
    calib: Calibration | None,
    data_root: Path | None = None,
    groups: Path | None = None,
) -> Seen:
    """What the model trained and calibrated on: the manifest's train side, the calibration
    images, and the source cells of both (split manifest and recovered-groups tables)."""
    seen = Seen()
    manifest = bundle_manifest(bundle)
    rows = read_manifest(manifest) if manifest is not None else []
    seen.tables["split manifest"] = {key_of(r.label, r.path): r.group for r in rows}
    for name, table in groups_tables(bundle, groups, set(seen.tables["split manifest"])).items():
        seen.tables[name] = table
    if rows:
        try:
            root: Path | None = training_root(bundle, data_root)
        except WbcError:
            root = None  # names and cells are still checked; contents need the files
        train = [(r.label, r.path) for r in rows if r.side == "train"]
        n = seen.add("training", train, root)
        seen.training_known = True
        seen.checked.append(
            f"the train side of {manifest.name} ({n} images"  # type: ignore[union-attr]
            + (", names, cells and contents)" if root is not None else ", names and cells)")
        )
    if calib is not None:
        n = seen.add("calibration", zip(calib.labels, calib.files, strict=True), calib.root)
        seen.checked.append(f"the {n} calibration images")
    if seen.checked:
        seen.checked.append("source cells by " + ", ".join(seen.tables))
    return seen


def groups_tables(
    bundle: Bundle, given: Path | None = None, manifest: set[Key] | None = None
) -> dict[str, dict[Key, str]]:
    """Recovered source cells: the shipped Kaggle TRAIN table (when it knows most of the
    manifest's files: the bundle was trained on Kaggle TRAIN), the bundle's own groups CSV when
    provenance names one that is here, and `given` (--groups)."""
    tables: dict[str, dict[Key, str]] = {}
    shipped = read_groups_csv(shipped_groups_path())
    if manifest and 2 * len(manifest & shipped.keys()) >= len(manifest):
        tables["recovered groups (shipped)"] = shipped
    if given is not None:
        try:
            tables[f"recovered groups ({given.name}, --groups)"] = read_groups_csv(given)
        except (OSError, ValueError) as exc:
            message = str(exc).removeprefix(f"{given}: ")
            raise DataError(getattr(exc, "strerror", None) or message, given) from None
    groups = bundle.provenance.get("groups")
    csv = groups.get("csv") if isinstance(groups, dict) else None
    if isinstance(csv, str):
        path = next((p for p in (Path(csv), bundle.root / csv) if p.is_file()), None)
        try:
            if path is not None:
                tables[f"recovered groups ({path.name})"] = read_groups_csv(path)
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot read the bundle's groups CSV (%s)", path, exc)
    return tables


# --------------------------------------------------------------------------- choosing


def stratified_pick(rows: Sequence[Labelled], seed: int = 0) -> list[Labelled]:
    """All rows in a stratified order: classes interleaved, and within a class one image per
    source cell (group) in turn, so any prefix covers classes and cells evenly."""
    rng = np.random.default_rng(seed)
    per_class: dict[str, list[Labelled]] = {}
    for label in sorted({r.label for r in rows}):
        groups: dict[str, list[Labelled]] = defaultdict(list)
        for r in rows:
            if r.label == label:
                groups[r.group].append(r)
        queues = [[g[i] for i in rng.permutation(len(g))] for g in groups.values()]
        queues = [queues[i] for i in rng.permutation(len(queues))]
        per_class[label] = _round_robin(queues)
    return _round_robin(list(per_class.values()))


def _round_robin(queues: list[list]) -> list:
    out: list = []
    depth = max((len(q) for q in queues), default=0)
    for i in range(depth):
        out += [q[i] for q in queues if i < len(q)]
    return out


# --------------------------------------------------------------------------- preprocessing


def preprocess_rows(
    root: Path, rows: Sequence[Labelled], spec: PreprocessSpec, limit: int | None = None
) -> tuple[np.ndarray, list[Labelled], dict[str, str]]:
    """Decode + preprocess rows in order until `limit` images succeed (None: all).

    Files that cannot be read or hold no cell are skipped by name with the reason. A spec that
    measures its light per run takes the rows as one run (`core.dataset.data.run_table`).
    """
    lut = run_table(root, rows, spec)
    spec = spec if lut is None else spec.after_colour()
    kept: list[tuple[Labelled, np.ndarray]] = []
    skipped: dict[str, str] = {}
    want = len(rows) if limit is None else limit
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            for row, result in zip(
                chunk, pool.map(lambda r: _one(root, r, spec, lut), chunk), strict=True
            ):
                if isinstance(result, str):
                    skipped[row.path] = result
                elif len(kept) < want:
                    kept.append((row, result))
            if len(kept) >= want:
                break
    shape = (0, spec.height, spec.width, 3)
    images = np.stack([x for _, x in kept]) if kept else np.zeros(shape, np.float32)
    return images.astype(np.float32), [r for r, _ in kept], skipped


def _one(
    root: Path, row: Labelled, spec: PreprocessSpec, lut: np.ndarray | None
) -> np.ndarray | str:
    try:
        rgb = decode_image(root / row.path)
        return preprocess(rgb if lut is None else apply_lut(rgb, lut), spec)
    except (ImageError, NoCellFound) as exc:
        return exc.message


# --------------------------------------------------------------------------- the two sets


def calibration_set(
    bundle: Bundle,
    n: int = DEFAULT_CALIB_IMAGES,
    folder: Path | None = None,
    seed: int = 0,
    data_root: Path | None = None,
) -> Calibration:
    """`n` representative images, stratified over classes and source cells."""
    if folder is not None:
        root, rows = folder_images(folder)
        where = f"{folder} (--calib-data)"
    else:
        root, rows = manifest_side(bundle, ["train"], data_root)
        where = f"train side of {_manifest_name(bundle)} under {root}"
    images, kept, skipped = preprocess_rows(
        root, stratified_pick(rows, seed), bundle.preprocessing, n
    )
    if not kept:
        raise DataError("no usable calibration image (none decoded with a cell)", folder or root)
    log.info("calibration: %d images from %s", len(kept), where)
    return Calibration(
        images=images,
        files=[r.path for r in kept],
        labels=[r.label for r in kept],
        source=where,
        skipped=skipped,
        root=root,
    )


def parity_set(
    bundle: Bundle,
    folder: Path | None = None,
    limit: int | None = None,
    calib: Calibration | None = None,
    data_root: Path | None = None,
    groups: Path | None = None,
) -> HeldOut:
    """The labelled held-out images parity runs on (all of them unless `limit`), without any
    image whose source cell was on the training or calibration side."""
    if folder is not None:
        root, rows = folder_images(folder)
        where = f"{folder} (--parity-data)"
        how = f"every image under {folder} (--parity-data)"
    else:
        root, rows = manifest_side(bundle, None, data_root)
        where = f"held-out side of {_manifest_name(bundle)} under {root}"
        how = f"the val/test sides of {_manifest_name(bundle)} under {root}"
    unknown = sorted({r.label for r in rows} - set(bundle.classes))
    if unknown:
        raise DataError(
            f"classes {unknown} are not among the bundle's ({', '.join(bundle.classes)})",
            folder or root,
        )
    seen = seen_images(bundle, calib, data_root, groups)
    rows, selection = drop_seen(rows, seen, root, how)
    if not rows:
        raise DataError(
            f"every one of its {selection.candidates} images was seen in training or "
            f"calibration ({selection.describe()}); pass held-out images",
            folder or root,
        )
    rows = [Labelled(r.path, r.label, seen.group_of(r.label, r.path)) for r in rows]
    if limit is not None:
        rows = stratified_pick(rows)
    images, kept, skipped = preprocess_rows(root, rows, bundle.preprocessing, limit)
    if not kept:
        raise DataError("no usable parity image (none decoded with a cell)", folder or root)
    index = {c: i for i, c in enumerate(bundle.classes)}
    log.info("parity set: %d images from %s", len(kept), where)
    return HeldOut(
        images=images,
        labels=np.array([index[r.label] for r in kept], np.int64),
        files=[r.path for r in kept],
        root=root,
        source=where,
        skipped=skipped,
        groups=[r.group for r in kept],
        selection=selection,
    )
