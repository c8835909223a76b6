"""`--resume` reads the checkpoint state through its declared shape (`train.run_files`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wbc_edge.core.errors import DataError
from wbc_edge.train.checkpoints import resume_state
from wbc_edge.train.config import STATE_FILE, TrainConfig


def _ckpt(tmp_path: Path, state: str) -> Path:
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "last.keras").write_bytes(b"")
    (ckpt / STATE_FILE).write_text(state)
    return ckpt


def test_a_state_with_a_diverged_epoch_resumes(tmp_path: Path):
    state = {"epoch": 2, "history": {"loss": [0.5, float("nan")]}, "best": None, "model": "m"}
    notes: list[str] = []
    got = resume_state(
        TrainConfig(model="m", resume=True), _ckpt(tmp_path, json.dumps(state)), notes
    )
    assert got is not None and got.epoch == 2 and got.history == {"loss": [0.5, None]}
    assert notes == ["resumed after epoch 2"]


def test_a_malformed_state_is_one_error_naming_it(tmp_path: Path):
    ckpt = _ckpt(tmp_path, json.dumps({"epoch": "2", "history": [], "model": "m"}))
    with pytest.raises(DataError) as err:
        resume_state(TrainConfig(model="m", resume=True), ckpt, [])
    assert err.value.path == ckpt / STATE_FILE
    assert set(err.value.problems) == {
        "epoch: expected an integer, got '2'",
        "history: expected an object, got a list",
        "best: missing",
    }
    assert (ckpt / "last.keras").is_file()  # not removed: the run says what is wrong instead


def test_without_resume_the_state_is_not_read_and_old_checkpoints_go(tmp_path: Path):
    ckpt = _ckpt(tmp_path, "not json")
    assert resume_state(TrainConfig(model="m"), ckpt, []) is None
    assert not ckpt.exists()
