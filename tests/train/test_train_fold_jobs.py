"""K-fold folds as parallel jobs (`--fold-jobs`): the same folds as one after another, and a
record of which fold ran where. Two child processes on the CPU, TensorFlow backend; about
60 s on two cores (most of it the children importing TensorFlow)."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pytest
from synthetic import make_cell_dataset

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.errors import WbcError
from wbc_edge.train import cli
from wbc_edge.train.fold_jobs import run_fold_jobs, slot_devices

pytestmark = pytest.mark.slow

RECIPE = [
    "--kfold", "2", "--split", "random", "--epochs", "2", "--batch-size", "4",
    "--steps-per-epoch", "2", "--input-size", "32", "--crop-size", "75", "--seed", "1",
    "--progress", "0",
]  # fmt: skip
# The same program on the same CPU with the same seeds: the folds agree to float32 rounding
# at most (measured: exactly); 1e-6 leaves room for a different thread count in a child.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def kfold_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("fold-jobs")
    make_cell_dataset(base / "data", cells_per_class=2, copies_per_cell=3, seed=4)
    common = [str(base / "data"), *RECIPE, "--cache-dir", str(base / "cache")]
    assert cli.main([*common, "--out", str(base / "one-after-another")]) == 0
    assert cli.main([*common, "--out", str(base / "parallel"), "--fold-jobs", "2"]) == 0
    return base / "one-after-another", base / "parallel"


def weights(bundle):
    import keras

    return keras.saving.load_model(bundle / "model.keras", compile=False).get_weights()


def test_parallel_folds_give_the_results_of_one_after_another(kfold_runs):
    seq, par = kfold_runs
    s_report, p_report = (json.loads((r / "report.json").read_text()) for r in kfold_runs)
    assert p_report["kfold"]["folds"] == s_report["kfold"]["folds"]  # metrics per fold
    assert p_report["kfold"]["summary"] == s_report["kfold"]["summary"]
    for i in (0, 1):
        fold = f"folds/fold{i}"
        load_bundle(par / fold)
        for a, b in zip(weights(par / fold), weights(seq / fold), strict=True):
            np.testing.assert_allclose(a, b, atol=TOLERANCE)


def test_the_record_says_which_fold_ran_where(kfold_runs):
    par = kfold_runs[1]
    jobs = json.loads((par / "fold_jobs.json").read_text())
    assert [j["fold"] for j in jobs] == [0, 1] and [j["slot"] for j in jobs] == [0, 1]
    assert all(j["device"] == "cpu" and j["returncode"] == 0 for j in jobs)
    assert len({j["pid"] for j in jobs}) == 2
    assert all((par / j["log"]).is_file() for j in jobs)
    start = [datetime.fromisoformat(j["started"]).timestamp() for j in jobs]
    assert start[1] < start[0] + jobs[0]["seconds"]  # fold 1 started while fold 0 ran
    assert not (kfold_runs[0] / "fold_jobs.json").exists()


def test_each_slot_gets_its_own_gpu():
    assert slot_devices(3, 2) == [
        ("gpu:0", {"CUDA_VISIBLE_DEVICES": "0"}),
        ("gpu:1", {"CUDA_VISIBLE_DEVICES": "1"}),
        ("gpu:0", {"CUDA_VISIBLE_DEVICES": "0"}),
    ]
    assert slot_devices(2, 0) == [("cpu", {}), ("cpu", {})]


def test_a_failed_fold_is_one_line_naming_its_log(tmp_path):
    out = tmp_path / "run"
    argv = [str(tmp_path / "no-such-data"), "--out", str(out), *RECIPE]
    with pytest.raises(WbcError, match=r"fold[01] failed \(exit 2\); see fold_jobs/fold[01]\.log"):
        run_fold_jobs(argv, 2, 2, out, gpus=0, timeout_s=120)
    log = next((out / "fold_jobs").glob("fold*.log")).read_text()
    assert "wbc-train: " in log and "Traceback" not in log
