"""Feature extraction and pair verification in a spawned process pool, or in this process."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2

from wbc_edge.core.dataset.grouping_params import GroupingParams
from wbc_edge.core.dataset.pair_verify import pair_inliers
from wbc_edge.core.dataset.sift_features import Features, FeatureStore, image_features

_WORKER: dict[str, object] = {}


def _init_worker(params: GroupingParams, threads: int | None) -> None:
    if threads is not None:
        cv2.setNumThreads(threads)
    _WORKER.clear()
    _WORKER["params"] = params


def _use_store(key: str, store: FeatureStore | None = None) -> FeatureStore:
    if _WORKER.get("key") != key:
        _WORKER["store"] = store if store is not None else FeatureStore.load(Path(key))
        _WORKER["key"] = key
    return _WORKER["store"]  # type: ignore[return-value]


def _features_task(path: Path) -> Features:
    return image_features(path, _WORKER["params"])  # type: ignore[arg-type]


def _verify_task(task: tuple[str, int, int, int | None]) -> int:
    key, i, j, stop_at = task
    store = _use_store(key)
    return pair_inliers(store[i], store[j], _WORKER["params"], stop_at)  # type: ignore[arg-type]


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (inherited by processes started in it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WorkerPool:
    """Runs feature extraction and pair verification in a spawned process pool (workers > 1,
    features shared through memory-mapped files in `tmp`) or in this process."""

    def __init__(self, params: GroupingParams, workers: int, tmp: Path):
        self.tmp, self.key, self.pool = tmp, "", None
        if workers > 1:
            # spawn, not fork: a forked child can hang on OpenCV's thread pool. One BLAS thread
            # per worker: threaded BLAS stalls on small products when the machine is busy.
            with _environment(dict.fromkeys(_THREAD_VARIABLES, "1")):
                self.pool = mp.get_context("spawn").Pool(workers, _init_worker, (params, 1))
        else:
            self._saved = dict(_WORKER)
            _init_worker(params, None)

    def _map(self, fn, items: Sequence, chunksize: int) -> Iterator:
        if self.pool is None:
            return map(fn, items)
        return self.pool.imap(fn, items, chunksize=max(1, chunksize))

    def features(self, paths: Sequence[Path]) -> Iterator[Features]:
        return self._map(_features_task, list(paths), 16)

    def use(self, store: FeatureStore, name: str) -> None:
        """Make `store` the features that `verify` indexes into."""
        if self.pool is None:
            self.key = name
            _use_store(name, store)
        else:
            folder = self.tmp / name
            store.save(folder)
            self.key = str(folder)

    def verify(self, pairs: Sequence[tuple[int, int]], stop_at: int | None) -> list[int]:
        tasks = [(self.key, i, j, stop_at) for i, j in pairs]
        return list(self._map(_verify_task, tasks, min(64, len(tasks) // 16)))

    def close(self, error: bool = False) -> None:
        if self.pool is not None:
            if error:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
        else:
            _WORKER.clear()
            _WORKER.update(self._saved)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close(exc[0] is not None)
