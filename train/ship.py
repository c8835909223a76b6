"""`wbc-train ship CHILD`: one command from an adapted bundle to the device's model in use.

1. refuse a child that did not beat its parent (`core.adaptation`);
2. `wbc-convert CHILD` (INT8 by default; its calibration interleaves the lab's cells,
   `convert.lab_calibration`), with the parity gate: a failed artifact stops here;
3. `wbc-edge models install CHILD` on this machine: the parity self-test on this device's
   runtimes, then the model in use, the previous one kept for `wbc-edge models rollback`.

Each stage runs as its own command (the stages never import each other); their output is shown
as it comes. On a device without TensorFlow, convert where the training ran and run step 3
there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wbc_edge.core.adaptation import adaptation_problem
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.errors import WbcError


def ship(
    child: Path,
    store: Path | None = None,
    data_root: Path | None = None,
    artifacts: str | None = None,
) -> int:
    """Convert, verify and install; the exit status of the first stage that failed, else 0."""
    bundle = load_bundle(child)
    why = adaptation_problem(bundle)
    if why is not None:
        raise WbcError(f"not shipped: {why}", bundle.path)
    convert = [sys.executable, "-m", "wbc_edge.convert.cli", str(child)]
    convert += ["--artifacts", artifacts] if artifacts else ["--int8"]
    if data_root is not None:
        convert += ["--data-root", str(data_root)]
    install = [sys.executable, "-m", "wbc_edge.edge_app.cli", "models", "install", str(child)]
    if store is not None:
        install += ["--store", str(store)]
    for what, cmd in (("conversion or its parity gate", convert), ("installation", install)):
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            print(f"wbc-train ship: {what} failed (exit {rc}); nothing more was done",
                  file=sys.stderr)  # fmt: skip
            return rc
    return 0
