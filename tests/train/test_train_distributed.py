"""The parts of data-parallel and multi-host training that need no second device: each
process's rows of a batch, the job's flags and variables, one-line errors (< 1 s)."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess_spec import NormSpec, PreprocessSpec
from wbc_edge.train import cli
from wbc_edge.train.augment import Augment
from wbc_edge.train.dataset import CellBatches
from wbc_edge.train.devices import Replicas
from wbc_edge.train.distributed import Cluster, cluster_from, join

SPEC = PreprocessSpec(height=8, width=8, norm=NormSpec(kind="scale", scale=1 / 255, offset=0))


def batches(n: int, replicas: Replicas | None = None, **kw) -> CellBatches:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return CellBatches(
        images, np.arange(n) % 4, 4, SPEC, 8, augment=Augment.parse("flips,rot90,shift=0.1"),
        shuffle=True, seed=3, mixup=0.2, replicas=replicas, **kw,
    )  # fmt: skip


def test_processes_hand_over_their_rows_of_the_one_device_batch():
    one = batches(16)
    parts = [batches(16, Replicas(devices=4, processes=2, process=p)) for p in (0, 1)]
    for i in range(len(one)):
        x, y = one[i]
        (x0, y0), (x1, y1) = parts[0][i], parts[1][i]
        assert x0.shape[0] == x1.shape[0] == 4  # rows 0-3 and 4-7 of the global batch of 8
        np.testing.assert_array_equal(np.concatenate([x0, x1]), x)  # augmentation and mixup
        np.testing.assert_array_equal(np.concatenate([y0, y1]), y)


def test_a_last_training_batch_is_cut_to_a_multiple_of_the_devices():
    assert len(batches(14)) == 2 and len(batches(14, Replicas(devices=4))) == 2
    assert batches(14, Replicas(devices=4))[1][0].shape[0] == 4  # 6 rows cut to 4
    assert len(batches(10, Replicas(devices=4))) == 1  # 2 rows left: no batch of them


def test_a_last_validation_batch_is_padded_with_zero_weight_rows():
    val = batches(14, Replicas(devices=4), pad_partial=True)
    assert len(val) == 2
    _, _, w = val[0]
    assert w.tolist() == [1.0] * 8  # every batch carries weights
    x, y, w = val[1]
    assert len(x) == len(y) == 8 and w.tolist() == [1.0] * 6 + [0.0] * 2
    _, _, w1 = batches(14, Replicas(devices=4, processes=2, process=1), pad_partial=True)[1]
    assert w1.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert len(batches(14, None, pad_partial=True)[1][0]) == 6  # one device: as it was
    assert len(batches(14, None, pad_partial=True)[1]) == 2  # (x, y): no weights


def test_the_job_comes_from_the_flags_or_the_launch_variables():
    assert cluster_from(None, None, None, env={}) is None
    assert cluster_from("10.0.0.1:1234", 2, 1, env={}) == Cluster("10.0.0.1:1234", 2, 1)
    keras_env = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    }
    assert cluster_from(None, None, None, env=keras_env) == Cluster("10.0.0.1:1234", 2, 1)
    jax_env = {"JAX_COORDINATOR_ADDRESS": "node0:9999", "JAX_NUM_PROCESSES": "4",
               "JAX_PROCESS_ID": "3"}  # fmt: skip
    assert cluster_from(None, None, 0, env=jax_env) == Cluster("node0:9999", 4, 0)
    assert cluster_from("auto", None, None, env={}) == Cluster("auto")


@pytest.mark.parametrize(
    "args, env, message",
    [
        (("10.0.0.1", 2, 0), {}, "is not HOST:PORT"),
        (("10.0.0.1:1234", None, 0), {}, "needs --num-processes N and --process-id I"),
        (("10.0.0.1:1234", 2, 2), {}, r"--process-id must be in 0\.\.1, got 2"),
        (("10.0.0.1:1234", 0, 0), {}, "--num-processes must be 1 or more"),
        ((None, 2, 0), {}, "need --coordinator HOST:PORT"),
        ((None, None, None), {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two"},
         "JAX_NUM_PROCESSES='two' is not a whole number"),
    ],
)  # fmt: skip
def test_an_impossible_job_is_one_line(args, env, message):
    with pytest.raises(WbcError, match=message):
        cluster_from(*args, env=env)


def test_wbc_train_says_in_one_line_what_is_wrong_with_the_job(tmp_path, capsys):
    args = [str(tmp_path), "--out", str(tmp_path / "m"), "--coordinator", "127.0.0.1:1"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == "wbc-train: --coordinator needs --num-processes N and --process-id I"


def test_a_job_on_another_backend_is_one_line():
    import keras

    if keras.backend.backend() == "jax":
        pytest.skip("this process runs JAX")
    with pytest.raises(WbcError, match="multi-host training runs on JAX; set KERAS_BACKEND=jax"):
        join(Cluster("127.0.0.1:1", 2, 0), timeout_s=5)
