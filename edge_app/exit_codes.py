"""Exit codes of `wbc-edge` that a script can trust (docs/edge.md, "What happens when...").

| code | meaning                                                                  |
| ---- | ------------------------------------------------------------------------ |
| 0    | every input was analysed (frames without a white cell included)          |
| 1    | `verify`: an artifact disagrees with the float model below the threshold |
| 2    | nothing was run: a user error (bad option, bundle, source, output path)  |
| 4    | some inputs failed (error records in the log, named in the summary)      |
| 5    | every input failed: not one frame was analysed                           |
| 6    | the JSONL log could not be written (disk full, closed pipe); summary shown |
| 130  | stopped by Ctrl-C or SIGTERM; the summary covers everything read so far  |
"""

from __future__ import annotations

from wbc_edge.core.cli_support import INTERRUPTED, OUTPUT_FAILED, USER_ERROR
from wbc_edge.edge_app.summary import DifferentialCount

HELP = (
    "exit codes: 0 every input analysed; 2 user error (nothing run); 4 some inputs failed; "
    "5 every input failed; 6 the JSONL log or stdout could not be written; 130 stopped by a "
    "signal (classify)"
)
OK = 0
VERIFY_FAILED = 1
SOME_FAILED = 4
ALL_FAILED = 5
__all__ = [
    "ALL_FAILED",
    "HELP",
    "INTERRUPTED",
    "OK",
    "OUTPUT_FAILED",
    "SOME_FAILED",
    "USER_ERROR",
    "VERIFY_FAILED",
    "exit_code",
]


def exit_code(count: DifferentialCount, output_failed: bool = False, stopped: bool = False) -> int:
    """The code of a finished run: output failure first, then a signal, then the inputs."""
    if output_failed:
        return OUTPUT_FAILED
    if stopped:
        return INTERRUPTED
    if count.errors and not count.frames:
        return ALL_FAILED
    if count.errors:
        return SOME_FAILED
    return OK
