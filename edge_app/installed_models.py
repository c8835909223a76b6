"""The device's installed models: install (verified first), list, use, roll back.

A store folder (`--store`, else `$WBC_MODELS`, else ~/.local/share/wbc-edge/models) holds each
installed bundle as a copy, `STORE/<bundle name>-<first 8 hex of its bundle.json's sha256>/`,
and `installed.json`:

    {"current": "NAME" | null, "previous": ["OLDER", ..., "LAST"], "log": [{time, action, model}]}

`install` checks the bundle's files, refuses an adapted bundle that did not beat its parent,
runs the parity self-test (`wbc-edge verify`) on the copy on this device's runtimes and only
then makes it current; the model it replaces goes on `previous`, so `rollback` brings it back.
Nothing is deleted. `--model @current` (or `@NAME`) on classify and run names an installed
model, so the report and the JSONL name the model that counted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from wbc_edge.core.adaptation import adaptation_problem, parent_name
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.digest import sha256_file
from wbc_edge.core.errors import WbcError
from wbc_edge.core.json_limits import read_json
from wbc_edge.core.safe_io import atomic_write, printable
from wbc_edge.core.typed_json import decode_file
from wbc_edge.edge_app.verify import Verification, verify_bundle

STATE = "installed.json"
STATE_BYTES = 4_000_000
LOG_KEEP = 200


def store_path(given: Path | None = None) -> Path:
    """The store folder: `given`, else $WBC_MODELS, else ~/.local/share/wbc-edge/models."""
    if given is not None:
        return Path(given)
    if os.environ.get("WBC_MODELS"):
        return Path(os.environ["WBC_MODELS"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "wbc-edge" / "models"


def resolve_model(model: Path | str, store: Path | None = None) -> Path:
    """A `--model` value as a bundle folder: `@current` is the store's current model, `@NAME`
    an installed one; anything else is a folder, as given."""
    text = str(model)
    if not text.startswith("@"):
        return Path(model)
    root = store_path(store)
    state = read_state(root)
    name = state["current"] if text == "@current" else text[1:]
    if not name:
        raise WbcError("no model is installed yet: wbc-edge models install BUNDLE", root)
    if name not in installed_names(root):
        raise WbcError(f"no installed model {name[:80]!r} (wbc-edge models list)", root)
    return root / name


def install(
    bundle_dir: Path, store: Path | None = None, threads: int | None = None
) -> tuple[str, Verification]:
    """Copy, verify and make current; returns the installed name and the verification.
    WbcError (nothing changed) when the bundle is broken, did not win, or fails parity here."""
    root = store_path(store)
    bundle = load_bundle(bundle_dir)
    why = adaptation_problem(bundle)
    if why is not None:
        raise WbcError(f"not installed: {why}", bundle.path)
    name = f"{bundle.name}-{sha256_file(bundle.path)[:8]}"
    root.mkdir(parents=True, exist_ok=True)
    state = read_state(root)
    target = root / name
    if not target.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".installing-"))
        try:
            shutil.copytree(bundle.root, tmp / "b", ignore=shutil.ignore_patterns(".wbc-*"))
            check = verify_bundle(load_bundle(tmp / "b"), threads)
            if not check.passed:
                raise WbcError(
                    "not installed: the parity self-test failed on this device\n" + check.table,
                    bundle.path,
                )
            os.replace(tmp / "b", target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        check = verify_bundle(load_bundle(target), threads)
        if not check.passed:
            raise WbcError("not made current: the parity self-test failed on this device", target)
    _make_current(root, state, name, "install")
    return name, check


def use(name: str, store: Path | None = None) -> str:
    """Make an installed model current (the one in use goes on `previous`)."""
    root = store_path(store)
    if name not in installed_names(root):
        raise WbcError(f"no installed model {name[:80]!r} (wbc-edge models list)", root)
    state = read_state(root)
    load_bundle(root / name)  # its files still match their hashes
    _make_current(root, state, name, "use")
    return name


def rollback(store: Path | None = None) -> str:
    """Go back to the model in use before the current one; returns its name."""
    root = store_path(store)
    state = read_state(root)
    previous = [p for p in state["previous"] if p in installed_names(root)]
    if not previous:
        raise WbcError("nothing to roll back to: no earlier model was in use", root / STATE)
    back = previous.pop()
    load_bundle(root / back)
    state["previous"] = previous
    state["current"] = back
    _log(state, "rollback", back)
    _write_state(root, state)
    return back


def list_models(store: Path | None = None) -> list[dict[str, Any]]:
    """One row per installed model: name, bundle name, created, parent, whether current."""
    root = store_path(store)
    state = read_state(root)
    rows = []
    for name in installed_names(root):
        try:
            b = load_bundle(root / name, verify=False)
            created, parent, model = b.provenance.get("created"), parent_name(b), b.name
        except WbcError:
            created, parent, model = None, None, "(unreadable)"
        rows.append(
            {"name": name, "model": model, "created": created, "parent": parent,
             "current": name == state["current"]}
        )  # fmt: skip
    return rows


def format_list(rows: list[dict[str, Any]], store: Path) -> str:
    if not rows:
        return f"no models installed in {printable(str(store))}"
    lines = [f"  {'name':<36} {'created':<26} parent"]
    for r in rows:
        mark = "*" if r["current"] else " "
        lines.append(f"{mark} {r['name']:<36} {r['created'] or '-'!s:<26} {r['parent'] or '-'}")
    lines.append(f"(* in use; store {printable(str(store))})")
    return "\n".join(lines)


def installed_names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "bundle.json").is_file()
                  and not p.name.startswith("."))  # fmt: skip


@dataclass
class LogEntry:
    open_keys: ClassVar[bool] = True
    time: str
    action: str
    model: str


@dataclass
class StoreState:
    """installed.json's shape, decoded by `core.typed_json` (the state stays a dict)."""

    open_keys: ClassVar[bool] = True
    current: str | None
    previous: list[str]
    log: list[LogEntry] = field(default_factory=list)


def read_state(root: Path) -> dict[str, Any]:
    file = root / STATE
    if not file.exists():
        return {"current": None, "previous": [], "log": []}
    data = read_json(file, STATE_BYTES)
    decode_file(StoreState, data, file)
    data.setdefault("log", [])
    return data


def _make_current(root: Path, state: dict[str, Any], name: str, action: str) -> None:
    if state["current"] and state["current"] != name:
        state["previous"] = [p for p in state["previous"] if p != state["current"]]
        state["previous"].append(state["current"])
    state["current"] = name
    _log(state, action, name)
    _write_state(root, state)


def _log(state: dict[str, Any], action: str, name: str) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    state["log"] = [*state["log"], {"time": now, "action": action, "model": name}][-LOG_KEEP:]


def _write_state(root: Path, state: dict[str, Any]) -> None:
    atomic_write(root / STATE, json.dumps(state, indent=1) + "\n")
