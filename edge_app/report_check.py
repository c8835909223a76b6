"""Checking a report folder's JSON before anything uses it: `wbc-edge review` serves it to a
browser and copies files named in it, so a crafted report.json must not reach either.

Class names come from the safe set (`core.class_names`), cell ids are unique positive integers,
every cell's label is a class, and every file a cell names (`crop`, `context`) lies inside the
report folder (`confined`, checked again where the file is opened: a link may change). A
problem is one WbcError line naming the file and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath
from typing import Any

from wbc_edge.core.class_names import class_name_problem
from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.identity import name_problem, sample_problem
from wbc_edge.edge_app.report_html import NOT_A_CELL

META_TEXT = ("model", "bundle", "bundle_sha256", "runtime", "mode", "source", "date")
COUNT_INTS = ("cells", "frames", "frames_without_white_cell", "errors", "uncertain")
ROW_NUMBERS = ("percent", "ci95_low", "ci95_high")


def check_report(data: Any, path: Path) -> dict[str, Any]:
    """report.json's content, or WbcError naming the first field that is wrong."""
    _need(isinstance(data, dict), "the report must be a JSON object", path)
    meta, count, cells = data.get("meta"), data.get("count"), data.get("cells")
    _need(isinstance(meta, dict), "meta: missing or not an object", path)
    classes = meta.get("classes")
    _need(isinstance(classes, list) and bool(classes), "meta.classes: not a list of names", path)
    for c in classes:
        problem = class_name_problem(c)
        _need(problem is None, f"meta.classes: {problem}", path)
    _need(len(set(classes)) == len(classes), "meta.classes: names must be unique", path)
    for key in META_TEXT:
        _need(isinstance(meta.get(key), str), f"meta.{key}: expected a string", path)
    for key in ("scale", "threshold"):
        _need(_number(meta.get(key)), f"meta.{key}: expected a finite number", path)
    _check_identity(meta, path)
    _need(isinstance(count, dict), "count: missing or not an object", path)
    for key in COUNT_INTS:
        _need(_int(count.get(key)), f"count.{key}: expected a whole number", path)
    _need(_number(count.get("threshold")), "count.threshold: expected a finite number", path)
    rows = count.get("rows")
    _need(isinstance(rows, list), "count.rows: expected a list", path)
    for i, row in enumerate(rows):
        ok = isinstance(row, dict) and row.get("class") in classes
        ok = ok and _int(row.get("cells")) and _int(row.get("uncertain"))
        ok = ok and all(_number(row.get(k)) for k in ROW_NUMBERS)
        _need(ok, f"count.rows[{i}]: not a row of a class of this report", path)
    _need(isinstance(cells, list), "cells: expected a list", path)
    ids: set[int] = set()
    for i, cell in enumerate(cells):
        _check_cell(cell, f"cells[{i}]", classes, ids, path)
    for key in ("flagged_frames", "notes"):
        _need(isinstance(data.get(key, []), list), f"{key}: expected a list", path)
    for i, f in enumerate(data.get("flagged_frames", [])):
        ok = isinstance(f, dict) and isinstance(f.get("source"), str)
        ok = ok and _frame(f.get("frame")) and isinstance(f.get("flags"), list)
        ok = ok and all(isinstance(x, str) for x in f["flags"])
        _need(ok, f"flagged_frames[{i}]: not a flagged frame", path)
    _need(all(isinstance(n, str) for n in data.get("notes", [])), "notes: not text", path)
    return data


def check_review(review: Any, data: dict[str, Any], path: Path) -> dict[str, Any]:
    """review.json's content checked against its report: ids of its cells, its classes, its
    version, signature and the earlier versions it keeps (`edge_app.signing`)."""
    _check_version(review, data, path, "")
    history = review.get("history", [])
    _need(isinstance(history, list) and len(history) <= MAX_VERSIONS, "history: bad", path)
    for i, old in enumerate(history):
        _check_version(old, data, path, f"history[{i}].")
    return review


MAX_VERSIONS = 1000


def _check_version(review: Any, data: dict[str, Any], path: Path, where: str) -> None:
    _need(isinstance(review, dict), f"{where or 'the review'}: expected a JSON object", path)
    corrections = review.get("corrections")
    _need(isinstance(corrections, dict), f"{where}corrections: expected an object", path)
    ids = {str(c["id"]) for c in data["cells"]}
    allowed = {*data["meta"]["classes"], NOT_A_CELL}
    for cid, label in corrections.items():
        _need(cid in ids, f"{where}corrections: no cell #{cid[:20]!r} in the report", path)
        _need(label in allowed, f"{where}corrections.{cid}: not a class of this report", path)
    confirmed = review.get("confirmed", [])
    ok = isinstance(confirmed, list) and all(isinstance(c, str) and c in ids for c in confirmed)
    _need(ok, f"{where}confirmed: expected ids of cells of the report", path)
    version = review.get("version", 1)
    _need(_int(version) and version >= 1, f"{where}version: expected a whole number", path)
    _need(isinstance(review.get("date", ""), str), f"{where}date: expected a string", path)
    count = review.get("count")
    _need(isinstance(count, dict), f"{where}count: expected an object", path)
    rows = count.get("rows")
    ok = isinstance(rows, list) and all(
        isinstance(r, dict)
        and r.get("class") in allowed
        and _int(r.get("cells"))
        and all(_number(r.get(k)) for k in ROW_NUMBERS)
        for r in rows
    )
    ok = ok and _int(count.get("cells")) and _int(count.get("uncertain"))
    _need(ok, f"{where}count: bad", path)
    _check_signature(review.get("signature"), path, where)


def _check_signature(sig: Any, path: Path, where: str) -> None:
    if sig is None:
        return
    _need(isinstance(sig, dict), f"{where}signature: expected an object or null", path)
    why = name_problem(sig.get("reviewer"))
    _need(why is None, f"{where}signature.reviewer: {why}", path)
    _need(isinstance(sig.get("time"), str), f"{where}signature.time: expected a string", path)
    for key in ("sha256", "report_sha256"):
        ok = isinstance(sig.get(key), str) and re.fullmatch(r"[0-9a-f]{64}", sig[key])
        _need(bool(ok), f"{where}signature.{key}: expected 64 hex digits", path)


def _check_identity(meta: dict[str, Any], path: Path) -> None:
    """meta's run_id, sample and operator: absent or null (older reports), else well formed."""
    run_id = meta.get("run_id")
    ok = run_id is None or (isinstance(run_id, str) and re.fullmatch(r"[0-9a-f]{32}", run_id))
    _need(bool(ok), "meta.run_id: expected 32 hex digits", path)
    for key, problem in (("sample", sample_problem), ("operator", name_problem)):
        value = meta.get(key)
        why = None if value is None else problem(value)
        _need(why is None, f"meta.{key}: {why}", path)


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


def _check_cell(cell: Any, where: str, classes: list, ids: set[int], path: Path) -> None:
    _need(isinstance(cell, dict), f"{where}: expected an object", path)
    cid = cell.get("id")
    _need(_int(cid) and cid >= 1 and cid not in ids, f"{where}.id: not a new whole number", path)
    ids.add(cid)
    _need(isinstance(cell.get("source"), str), f"{where}.source: expected a string", path)
    _need(_frame(cell.get("frame")), f"{where}.frame: expected a frame number", path)
    box = cell.get("box")
    ok = box is None or (isinstance(box, list) and len(box) == 4 and all(map(_int, box)))
    _need(ok, f"{where}.box: expected 4 whole numbers or null", path)
    _need(cell.get("label") in classes, f"{where}.label: not a class of this report", path)
    _need(_number(cell.get("confidence")), f"{where}.confidence: expected a number", path)
    _need(isinstance(cell.get("uncertain"), bool), f"{where}.uncertain: expected true/false", path)
    probs = cell.get("probs")
    ok = isinstance(probs, dict) and all(k in classes and _number(v) for k, v in probs.items())
    _need(ok, f"{where}.probs: expected a number per class", path)
    for key in ("crop", "context"):
        value = cell.get(key)
        ok = isinstance(value, str) and ((value == "" and key == "context") or _relative(value))
        _need(ok, f"{where}.{key}: must name a file inside the report folder", path)
    _need(isinstance(cell.get("morphology"), dict | None), f"{where}.morphology: bad", path)
    scale = cell.get("scale")
    _need(scale is None or _number(scale), f"{where}.scale: expected a number", path)


def _relative(rel: str) -> bool:
    pure = PurePosixPath(rel)
    return bool(rel) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in rel


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _frame(v: Any) -> bool:
    return (_int(v) and v >= 0) or (isinstance(v, str) and len(v) <= 64)


def _need(ok: bool, message: str, path: Path) -> None:
    if not ok:
        raise WbcError(message, path)
