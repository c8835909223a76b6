"""The device's model store on the committed tiny bundle: install verifies first, the previous
model is kept for rollback, `use` switches, a child that did not win is refused, `@current`
resolves, bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wbc_edge.core.bundle import load_bundle, save_bundle
from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app import installed_models as im
from wbc_edge.edge_app.cli import main

pytestmark = pytest.mark.edge


def _copy(edge_bundle: Path, tmp_path: Path, name: str, **adaptation) -> Path:
    out = tmp_path / name
    shutil.copytree(edge_bundle, out)
    bundle = load_bundle(out)
    bundle.name = name
    if adaptation:
        bundle.provenance["adaptation"] = adaptation
    save_bundle(bundle)
    return out


def test_install_use_rollback(edge_bundle: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    a = _copy(edge_bundle, tmp_path, "lab-a")
    b = _copy(edge_bundle, tmp_path, "lab-b", parent={"name": "lab-a"}, verdict={"wins": True})
    name_a, check = im.install(a, store)
    assert check.passed and "PASS" in check.table
    name_b, _ = im.install(b, store)
    state = im.read_state(store)
    assert state["current"] == name_b and state["previous"] == [name_a]
    assert im.resolve_model("@current", store) == store / name_b
    assert im.resolve_model(f"@{name_a}", store) == store / name_a
    assert im.resolve_model(a) == a  # a folder stays a folder
    rows = {r["name"]: r for r in im.list_models(store)}
    assert rows[name_b]["parent"] == "lab-a" and rows[name_b]["current"]
    assert im.rollback(store) == name_a
    assert im.read_state(store)["current"] == name_a
    with pytest.raises(WbcError, match="nothing to roll back"):
        im.rollback(store)
    assert im.use(name_b, store) == name_b and im.read_state(store)["previous"] == [name_a]
    assert main(["models", "list", "--store", str(store)]) == 0
    assert f"* {name_b}" in capsys.readouterr().out
    assert [e["action"] for e in im.read_state(store)["log"]] == [
        "install", "install", "rollback", "use"
    ]  # fmt: skip


def test_a_child_that_did_not_win_is_not_installed(edge_bundle: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    lost = _copy(edge_bundle, tmp_path, "lost", verdict={"wins": False, "reasons": ["forgets"]})
    with pytest.raises(WbcError, match="did not win against its parent: forgets"):
        im.install(lost, store)
    assert im.installed_names(store) == []


def test_a_bundle_failing_verify_here_is_not_installed(edge_bundle: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    bad = _copy(edge_bundle, tmp_path, "bad")
    bundle = load_bundle(bad)
    bundle.parity["thresholds"] = {"min_agreement": 1.01, "max_drop": 0.0}  # nothing can pass
    save_bundle(bundle)
    with pytest.raises(WbcError, match="self-test failed"):
        im.install(bad, store)
    assert im.installed_names(store) == [] and not list(store.glob(".installing-*"))


def test_bad_input_is_one_line(edge_bundle: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    assert main(["models", "use", "nope", "--store", str(store)]) == 2
    assert main(["models", "rollback", "--store", str(store)]) == 2
    store.mkdir(exist_ok=True)
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    state = store / "installed.json"
    state.write_text(json.dumps({"current": 3, "log": [{"time": "now"}]}))
    assert main(["models", "list", "--store", str(store)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"wbc-edge: {state}: {p}"
        for p in (
            "current: expected a string, got 3",
            "previous: missing",
            "log[0].action: missing",
            "log[0].model: missing",
        )
    ]
    with pytest.raises(WbcError, match="no model is installed yet"):
        im.resolve_model("@current", tmp_path / "empty")
