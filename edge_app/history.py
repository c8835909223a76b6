"""The run history: every report recorded in a local SQLite database (stdlib `sqlite3`).

One row per run (report folder), keyed by report.json's `run_id`: sample, operator, model and
bundle hash, the model's count, the estimate a lab reads, the reviewed count, the review's
version and signature. Every signed version is also kept in `signatures`. The report folder
stays the source of the pictures; the database says where it is.

The schema is versioned with `PRAGMA user_version` and migrated forward in order
(`MIGRATIONS`), each step in one transaction; a database written by a newer wbc-edge is
refused, never changed. Where: `--history DB`, else `$WBC_HISTORY`, else
`$XDG_DATA_HOME/wbc-edge/history.sqlite` (`~/.local/share/...`).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wbc_edge.core.errors import WbcError
from wbc_edge.core.safe_io import check_writable, printable
from wbc_edge.core.typed_json import decode, raise_problems
from wbc_edge.edge_app.signing import result_status

MIGRATIONS: dict[int, str] = {
    1: """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            folder TEXT NOT NULL,
            sample TEXT,
            operator TEXT,
            model TEXT NOT NULL,
            bundle_sha256 TEXT NOT NULL,
            source TEXT NOT NULL,
            date TEXT NOT NULL,
            cells INTEGER NOT NULL,
            model_count TEXT NOT NULL,
            estimate TEXT NOT NULL,
            reviewed_count TEXT,
            status TEXT NOT NULL,
            reviewer TEXT,
            signed_at TEXT,
            signature_sha256 TEXT,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX runs_sample ON runs (sample, date);
    """,
    2: """
        ALTER TABLE runs ADD COLUMN estimate_kind TEXT NOT NULL DEFAULT 'raw';
        ALTER TABLE runs ADD COLUMN review_version INTEGER;
        CREATE TABLE signatures (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            version INTEGER NOT NULL,
            reviewer TEXT NOT NULL,
            signed_at TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            PRIMARY KEY (run_id, version)
        );
    """,
}
SCHEMA = max(MIGRATIONS)


def history_path(explicit: Path | None = None) -> Path:
    """The database: `explicit`, else $WBC_HISTORY, else under $XDG_DATA_HOME."""
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("WBC_HISTORY"):
        return Path(os.environ["WBC_HISTORY"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "wbc-edge" / "history.sqlite"


@contextmanager
def open_history(path: Path) -> Iterator[sqlite3.Connection]:
    """The database at `path`, created or migrated to SCHEMA; WbcError naming it when it is
    not a wbc-edge history or comes from a newer wbc-edge."""
    path = Path(path)
    check_writable(path.parent)
    try:
        with closing(sqlite3.connect(path, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            migrate(db, path)
            yield db
    except sqlite3.DatabaseError as exc:
        raise WbcError(f"not a usable history database ({exc})", printable(str(path))) from None


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations the database has not had yet, each in one transaction."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA:
        raise WbcError(
            f"was written by a newer wbc-edge (schema {version}; this one knows {SCHEMA})",
            printable(str(path)),
        )
    for step in range(version + 1, SCHEMA + 1):
        statements = [s for s in MIGRATIONS[step].split(";") if s.strip()]
        with db:  # one transaction per step: all of it or none
            db.execute("BEGIN")
            for sql in statements:
                db.execute(sql)
            db.execute(f"PRAGMA user_version = {step}")


def record_report(path: Path, folder: Path) -> str:
    """Record (or update) the run of a report folder; returns its run id."""
    from wbc_edge.edge_app.report import load_report

    folder = Path(folder).resolve()
    data = load_report(folder)
    row = run_row(data, folder)
    review = data.get("review") or {}
    with open_history(path) as db, db:
        names = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "run_id")
        db.execute(
            f"INSERT INTO runs ({names}) VALUES ({marks}) "
            f"ON CONFLICT (run_id) DO UPDATE SET {updates}",
            row,
        )
        for version in [*review.get("history", []), review]:
            sig = version.get("signature") if version else None
            if sig:
                db.execute(
                    "INSERT OR IGNORE INTO signatures VALUES (?, ?, ?, ?, ?)",
                    (row["run_id"], version.get("version", 1), sig["reviewer"], sig["time"],
                     sig["sha256"]),
                )  # fmt: skip
    return row["run_id"]


def run_row(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The runs row of a loaded report (report.json + review.json)."""
    meta, count = data["meta"], data["count"]
    review = data.get("review")
    sig = (review or {}).get("signature") or {}
    return {
        "run_id": meta.get("run_id") or f"folder:{folder}",  # reports before run ids
        "folder": str(folder),
        "sample": meta.get("sample"),
        "operator": meta.get("operator"),
        "model": meta["model"],
        "bundle_sha256": meta["bundle_sha256"],
        "source": meta["source"],
        "date": meta["date"],
        "cells": count["cells"],
        "model_count": json.dumps({r["class"]: r["cells"] for r in count["rows"]}),
        "estimate": json.dumps({r["class"]: r["percent"] for r in count["rows"]}),
        "estimate_kind": count.get("estimate", "raw"),
        "reviewed_count": None
        if review is None
        else json.dumps({r["class"]: r["cells"] for r in review["count"]["rows"]}),
        "status": result_status(review),
        "review_version": None if review is None else review.get("version", 1),
        "reviewer": sig.get("reviewer"),
        "signed_at": sig.get("time"),
        "signature_sha256": sig.get("sha256"),
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def list_runs(path: Path, sample: str | None = None) -> list[dict[str, Any]]:
    """The recorded runs, newest first (of one sample when given)."""
    with open_history(path) as db:
        where, args = (" WHERE sample = ?", (sample,)) if sample else ("", ())
        rows = db.execute(f"SELECT * FROM runs{where} ORDER BY date DESC, recorded_at DESC", args)
        return [dict(r) for r in rows]


COUNT_COLUMNS = {"model_count": dict[str, int], "estimate": dict[str, float],
                 "reviewed_count": dict[str, int] | None}  # fmt: skip


def run_counts(run: dict[str, Any], path: Path) -> dict[str, Any]:
    """A row's per-class columns (JSON text) decoded as `COUNT_COLUMNS` (`core.typed_json`): the
    model's count, the estimate (%) and the reviewed count (null before review); WbcError
    naming the database and listing every problem otherwise."""
    problems: list[str] = []
    where, counts = f"runs[{run['run_id']}]", {}
    for key, kind in COUNT_COLUMNS.items():
        try:
            value = None if run[key] is None else json.loads(run[key])
        except ValueError:
            problems.append(f"{where}.{key}: not valid JSON")
            continue
        counts[key] = decode(kind, value, f"{where}.{key}", problems)
    raise_problems(problems, path)
    return counts


def format_runs(runs: list[dict[str, Any]], path: Path) -> str:
    """A table of the runs read from the database `path`: when, sample, operator, model, cells,
    status, and per class the model's count, the estimate (%) and the reviewed count."""
    if not runs:
        return "no runs recorded"
    lines = []
    for r in runs:
        counts = run_counts(r, path)
        model, estimate = counts["model_count"], counts["estimate"]
        reviewed = counts["reviewed_count"] or {}
        who = f"signed by {r['reviewer']} {r['signed_at']}" if r["reviewer"] else "not signed"
        lines.append(
            f"{r['date']}  sample {r['sample'] or '-'}  operator {r['operator'] or '-'}  "
            f"{r['model']} ({r['bundle_sha256'][:12]})  {r['cells']} cells  "
            f"{r['status']}, {who}"
        )
        for cls, k in model.items():
            after = f"  reviewed {reviewed[cls]}" if cls in reviewed else ""
            lines.append(
                f"    {cls:<12} model {k:>4}  estimate {estimate[cls]:5.1f} %"
                f" ({r['estimate_kind']}){after}"
            )
        lines.append(f"    folder {r['folder']}")
    return printable_lines(lines)


def printable_lines(lines: list[str]) -> str:
    return "\n".join(printable(line) for line in lines)
