"""Data-parallel training on JAX without a GPU: one CPU shown as 1, 2 and 4 devices
(`--xla_force_host_platform_device_count`), and a two-process `jax.distributed` job on
localhost, each run a child process with its own KERAS_BACKEND and XLA_FLAGS.

The runs share one recipe: the default one (custom-cnn, Adam with cosine decay, flips, rot90
and shifts) at 32 px, batch 4, 2 epochs of 3 steps. Data parallelism is the same arithmetic
spread over devices: batch norm and the gradients reduce over the whole global batch, so the
runs differ from the one-device run only in the order of float32 sums (about 1e-7 relative
per sum). TOLERANCE bounds what that becomes after 6 Adam steps: measured here, the curves
differ by at most 1.2e-6 and the weights by at most 1.6e-5 (2 and 4 devices, 2 processes x 2
devices), a margin of 6 under 1e-4. The runs are deterministic (fixed seeds, the same
XLA programs), so the margin does not drift between runs. About 95 s on two cores: each
child imports TensorFlow and JAX and compiles.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from repo_paths import TESTS
from synthetic import make_cell_dataset

from wbc_edge.core.bundle import load_bundle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("jax") is None, reason="JAX not installed (the train extra)"),
]

BATCH = 4
RECIPE = [
    "--epochs", "2", "--batch-size", str(BATCH), "--steps-per-epoch", "3", "--input-size", "32",
    "--crop-size", "75", "--split", "random", "--fractions", "50/25/25", "--seed", "1",
    "--progress", "0",
]  # fmt: skip
TOLERANCE = 1e-4  # absolute, on losses (~1) and on weights (|w| up to ~0.3); see above
TIMEOUT_S = 300
RUNNER = TESTS / "parallel_run.py"


def child_env(devices: int, tmp: Path) -> dict[str, str]:
    """This environment on JAX's CPU platform showing `devices` devices, no launch variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_DIST", "JAX_"))}
    env.update(
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        TMPDIR=str(tmp),
    )
    return env


def start(data: Path, out: Path, devices: int, tmp: Path, *extra: str) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(RUNNER), str(tmp / "batches.json"), str(data), "--out", str(out)]
    return subprocess.Popen(
        [*args, *RECIPE, "--cache-dir", str(data.parent / "cache"), *extra],
        env=child_env(devices, tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen) -> str:
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"a training child ran past {TIMEOUT_S} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    return output


def result(out: Path, tmp: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    return {"out": out, "report": report, "batches": json.loads((tmp / "batches.json").read_text())}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parallel") / "data"
    make_cell_dataset(root, cells_per_class=2, copies_per_cell=3, size=(160, 120), seed=3)
    return root


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict[int, dict]:
    """The recipe on 1, 2 and 4 devices of one process."""
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for n in (1, 2, 4):
        finish(start(data, base / f"d{n}", n, base / f"tmp{n}"))
        out[n] = result(base / f"d{n}", base / f"tmp{n}")
    return out


def weights(bundle: Path) -> list[np.ndarray]:
    """The saved model's weights, loaded as the converter loads them (TensorFlow backend)."""
    import keras

    return keras.saving.load_model(bundle / "model.keras", compile=False).get_weights()


def curves(report: dict) -> np.ndarray:
    h = report["history"]
    return np.array([h["loss"], h["accuracy"], h["val_loss"], h["val_accuracy"]])


def figures(run: dict, one: dict) -> str:
    """The comparison as quoted in docs/training.md (pytest -s prints it)."""
    pairs = zip(weights(run["out"]), weights(one["out"]), strict=True)
    dw = max(float(np.abs(a - b).max()) for a, b in pairs)
    dl = float(np.abs(curves(run["report"]) - curves(one["report"])).max())
    loss, loss_1 = run["report"]["history"]["loss"], one["report"]["history"]["loss"]
    return f"loss {loss} (1 device: {loss_1}): max |Δcurve| {dl:.2e}, max |Δw| {dw:.2e}"


def test_the_global_batch_is_split_over_the_devices(runs):
    assert runs[1]["batches"] == []  # one device: no distribution at all
    assert not any("data parallel" in n for n in runs[1]["report"]["notes"])
    for n in (2, 4):
        batches = runs[n]["batches"]
        assert len(batches) >= 6  # every training step, and validation
        for b in batches:
            assert b["global"] == b["local"] == BATCH
            assert [rows for _, rows in b["shards"]] == [BATCH // n] * n
            assert len({device for device, _ in b["shards"]}) == n
        assert f"data parallel over {n} cpu devices" in " ".join(runs[n]["report"]["notes"])


@pytest.mark.parametrize("n", [2, 4])
def test_loss_curve_and_weights_match_one_device(runs, n):
    one, run = runs[1], runs[n]
    assert run["report"]["timing"]["steps_per_epoch"] == 3 and run["report"]["epochs_run"] == 2
    np.testing.assert_allclose(curves(run["report"]), curves(one["report"]), atol=TOLERANCE)
    for a, b in zip(weights(run["out"]), weights(one["out"]), strict=True):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
    print(f"{n} devices against 1: {figures(run, one)}")


def test_the_bundle_is_the_same_contract(runs):
    bundles = {n: load_bundle(runs[n]["out"]) for n in (1, 2, 4)}  # hashes verified
    one = bundles[1]
    for n, b in bundles.items():
        assert b.contract_sha256 == one.contract_sha256  # classes and preprocessing
        assert [(a.format, a.precision, a.file) for a in b.artifacts] == [
            (a.format, a.precision, a.file) for a in one.artifacts
        ]
        assert [m["split"] for m in b.metrics] == [m["split"] for m in one.metrics]
        for m, m1 in zip(b.metrics, one.metrics, strict=True):
            assert m["values"]["confusion_matrix"] == m1["values"]["confusion_matrix"], n
        assert b.provenance["training"]["backend"] == "jax"


def test_the_data_parallel_bundle_converts_with_parity(runs, tmp_path):
    convert = pytest.importorskip("wbc_edge.convert.pipeline")
    config = convert.ConvertConfig(formats=["tflite"], precisions=["fp32"], out=tmp_path / "c")
    result = convert.convert_bundle(runs[4]["out"], config)
    assert result.passed and not result.failures
    assert load_bundle(tmp_path / "c").find("tflite", "fp32") is not None


def free_port() -> int:
    """An ephemeral port on the loopback, free a moment ago (the coordinator binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_as_one_and_only_process_0_writes(data, runs, tmp_path):
    out = tmp_path / "job"
    job = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2",
           "--join-timeout", "120"]  # fmt: skip
    procs = [
        start(data, out, 2, tmp_path / f"tmp{i}", *job, "--process-id", str(i)) for i in (0, 1)
    ]
    logs = [finish(p) for p in procs]
    assert "process 0 wrote" in logs[1] and f"wrote {out}/bundle.json" in logs[0]
    assert list((tmp_path / "tmp1").iterdir()) == [tmp_path / "tmp1" / "batches.json"]
    job_run = result(out, tmp_path / "tmp0")
    for i in (0, 1):  # each process hands over its 2 rows of every batch of 4, 1 per device
        for b in json.loads((tmp_path / f"tmp{i}" / "batches.json").read_text()):
            assert (b["global"], b["local"], [r for _, r in b["shards"]]) == (4, 2, [1, 1])
    notes = " ".join(job_run["report"]["notes"])
    assert "data parallel over 4 cpu devices in 2 process(es)" in notes
    np.testing.assert_allclose(curves(job_run["report"]), curves(runs[1]["report"]), atol=TOLERANCE)
    for a, b in zip(weights(out), weights(runs[1]["out"]), strict=True):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)
    load_bundle(out)
    print(f"2 processes x 2 devices against 1 device: {figures(job_run, runs[1])}")
