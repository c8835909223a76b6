"""Quiet logs by default: TensorFlow, absl and LiteRT's C++ chatter only with `--verbose`.

Environment variables quiet TensorFlow's C++ log when set before it loads (`quiet_env`).
LiteRT prints `INFO: Created TensorFlow Lite XNNPACK delegate` from C++ whatever they say, so
`native_stderr()` points file descriptor 2 at a temporary file while native code runs and
replays what was caught if the block fails, so an error never goes missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

VERBOSE = False  # set by `quiet_env(verbose=True)`: nothing is hidden then
_NOISY_LOGGERS = ("absl", "tensorflow", "tf2onnx", "h5py", "jax", "matplotlib", "PIL", "nncf")


def quiet_env(verbose: bool = False) -> None:
    """Call first thing in a command (before TensorFlow or LiteRT load)."""
    global VERBOSE
    VERBOSE = verbose
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++: errors only
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("GLOG_minloglevel", "2")
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr() -> Iterator[None]:
    """Hide what native code writes to fd 2 during the block (shown if it raises, or verbose).

    Python's own `sys.stderr` output in the block is hidden too, so keep the block to the
    native call (building an interpreter, converting a model).
    """
    if VERBOSE:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (some test runners)
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            caught.seek(0)
            sys.stderr.write(caught.read().decode("utf-8", "replace"))
            raise
        _restore(saved)


def _restore(saved: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
