"""Checking a report folder's JSON before anything uses it: `wbc-edge review` serves it to a
browser and copies files named in it, so a crafted report.json must not reach either.

The shapes of report.json and review.json (`core.report_shapes`) are decoded by
`core.typed_json` (keys a newer writer adds are kept); then class names come from the safe set
(`core.class_names`), cell ids are unique positive integers, every cell's label is a class,
and every file a cell names (`crop`, `context`) lies inside the report folder (`confined`,
checked again where the file is opened: a link may change). Every problem is listed, one line
each naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from wbc_edge.core.class_names import class_name_problem
from wbc_edge.core.report_shapes import Cell, Report, Review, ReviewVersion
from wbc_edge.core.typed_json import decode, raise_problems
from wbc_edge.edge_app.identity import name_problem, sample_problem
from wbc_edge.edge_app.report_html import NOT_A_CELL

MAX_VERSIONS = 1000
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_report(data: Any, path: Path) -> dict[str, Any]:
    """report.json's content, or WbcError naming the file and listing every problem."""
    problems: list[str] = []
    report = decode(Report, data, "", problems)
    if report is not None:
        problems += report_problems(report)
    raise_problems(problems, path)
    return data


def report_problems(report: Report) -> list[str]:
    """What the shapes cannot say: names, ids, labels, files inside the folder."""
    meta, out = report.meta, []
    classes = meta.classes
    out += [f"meta.classes: {p}" for p in map(class_name_problem, classes) if p]
    if not classes or len(set(classes)) != len(classes):
        out.append("meta.classes: names must be unique, at least one")
    if meta.run_id is not None and not re.fullmatch(r"[0-9a-f]{32}", meta.run_id):
        out.append("meta.run_id: expected 32 hex digits")
    for key, problem in (("sample", sample_problem), ("operator", name_problem)):
        value = getattr(meta, key)
        why = None if value is None else problem(value)
        if why is not None:
            out.append(f"meta.{key}: {why}")
    for i, row in enumerate(report.count.rows):
        if row.label not in classes:
            out.append(f"count.rows[{i}].class: not a class of this report")
    ids: set[int] = set()
    for i, cell in enumerate(report.cells):
        out += _cell_problems(cell, f"cells[{i}]", classes, ids)
    for i, f in enumerate(report.flagged_frames):
        if not _frame(f.frame):
            out.append(f"flagged_frames[{i}].frame: expected a frame number")
    return out


def check_review(review: Any, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """review.json's content checked against its report: ids of its cells, its classes, its
    version, signature and the earlier versions it keeps (`edge_app.signing`)."""
    problems: list[str] = []
    decoded = decode(Review, review, "", problems)
    if decoded is not None:
        if len(decoded.history) > MAX_VERSIONS:
            problems.append(f"history: more than {MAX_VERSIONS} versions")
        versions = [("", decoded), *((f"history[{i}].", v) for i, v in enumerate(decoded.history))]
        for where, version in versions:
            problems += _version_problems(version, data, where)
    raise_problems(problems, path)
    return review


def _version_problems(review: ReviewVersion, data: dict[str, Any], where: str) -> list[str]:
    ids = {str(c["id"]) for c in data["cells"]}
    allowed = {*data["meta"]["classes"], NOT_A_CELL}
    out = []
    for cid, label in review.corrections.items():
        if cid not in ids:
            out.append(f"{where}corrections: no cell #{cid[:20]!r} in the report")
        elif label not in allowed:
            out.append(f"{where}corrections.{cid}: not a class of this report")
    if not all(c in ids for c in review.confirmed):
        out.append(f"{where}confirmed: expected ids of cells of the report")
    if review.version < 1:
        out.append(f"{where}version: expected a whole number from 1")
    for i, row in enumerate(review.count.rows):
        if row.label not in allowed:
            out.append(f"{where}count.rows[{i}].class: not a class of this report")
    sig = review.signature
    if sig is not None:
        why = name_problem(sig.reviewer)
        if why is not None:
            out.append(f"{where}signature.reviewer: {why}")
        for key in ("sha256", "report_sha256"):
            if not _HEX64.fullmatch(getattr(sig, key)):
                out.append(f"{where}signature.{key}: expected 64 hex digits")
    return out


def confined(folder: Path, rel: Any) -> Path | None:
    """`folder / rel` when `rel` is a relative path that stays inside `folder` (links
    resolved), else None."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return None
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel:
        return None
    path = Path(folder) / pure
    try:
        root = Path(folder).resolve()
        real = path.resolve()
    except (OSError, RuntimeError):
        return None
    return path if real.is_relative_to(root) and real != root else None


def _cell_problems(cell: Cell, where: str, classes: list[str], ids: set[int]) -> list[str]:
    out = []
    if cell.id < 1 or cell.id in ids:
        out.append(f"{where}.id: not a new whole number")
    ids.add(cell.id)
    if not _frame(cell.frame):
        out.append(f"{where}.frame: expected a frame number")
    if cell.box is not None and len(cell.box) != 4:
        out.append(f"{where}.box: expected 4 whole numbers or null")
    if cell.label not in classes:
        out.append(f"{where}.label: not a class of this report")
    if not set(cell.probs) <= set(classes):
        out.append(f"{where}.probs: expected a number per class")
    for key in ("crop", "context"):
        value = getattr(cell, key)
        if not ((value == "" and key == "context") or _relative(value)):
            out.append(f"{where}.{key}: must name a file inside the report folder")
    return out


def _relative(rel: str) -> bool:
    pure = PurePosixPath(rel)
    return bool(rel) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in rel


def _frame(v: Any) -> bool:
    if isinstance(v, int) and not isinstance(v, bool):
        return v >= 0
    return isinstance(v, str) and len(v) <= 64
