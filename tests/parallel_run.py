"""`wbc-train` in this process, with a record of the batches JAX spreads over the devices.

Run by tests/train/test_train_parallel.py with KERAS_BACKEND=jax and XLA_FLAGS in its environment:
    python tests/parallel_run.py SPY.json WBC-TRAIN-ARGS...
SPY.json gets, for every image batch handed to the devices, its global size and the rows of
each of this process's shards (`keras.distribution` calls `distribute_data_input` per batch).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(spy_file: Path, argv: list[str]) -> int:
    from keras.src.backend.jax import distribution_lib

    from wbc_edge.train import cli

    batches: list[dict] = []
    original = distribution_lib.distribute_data_input

    def spy(per_process_batch, layout, batch_dim_name):
        array = original(per_process_batch, layout, batch_dim_name)
        if array.ndim == 4:  # the images (labels and weights are split alike)
            shards = sorted(array.addressable_shards, key=lambda s: s.device.id)
            batches.append({
                "global": int(array.shape[0]),
                "local": int(per_process_batch.shape[0]),
                "shards": [[int(s.device.id), int(s.data.shape[0])] for s in shards],
            })  # fmt: skip
        return array

    distribution_lib.distribute_data_input = spy
    try:
        return cli.main(argv)
    finally:
        spy_file.write_text(json.dumps(batches))


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[2:]))
