"""Every numeric option of `wbc-edge` has a sane range, refused in one line, never a traceback."""

from __future__ import annotations

import pytest
from repo_paths import REPO

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.errors import WbcError
from wbc_edge.core.limits import SCALE_RANGE, THREADS_RANGE
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier
from wbc_edge.edge_app.cli import main

pytestmark = pytest.mark.edge

ROOT = REPO
DEFAULT = ROOT / "models" / "default"
FRAMES = ROOT / "samples" / "frames"
COMMON = ["--model", str(DEFAULT), "--runtime", "litert"]

BAD = [
    ("--scale", "nan"),
    ("--scale", "inf"),
    ("--scale", "-inf"),
    ("--scale", "1e9"),
    ("--scale", "1e-9"),
    ("--scale", "0"),
    ("--scale", "-2"),
    ("--scale", "two"),
    ("--threads", "0"),
    ("--threads", "100000"),
    ("--threads", "-1"),
    ("--threads", "2.5"),
    ("--threshold", "nan"),
    ("--threshold", "-0.1"),
    ("--threshold", "1.5"),
    ("--min-nucleus-area", "0"),
    ("--min-nucleus-area", "-5"),
    ("--min-nucleus-area", "1000000000"),
]


@pytest.mark.parametrize("command", ["classify", "run"])
@pytest.mark.parametrize(("option", "value"), BAD)
def test_out_of_range_numbers_are_one_line(command, option, value, capsys) -> None:
    where = ["--source", str(FRAMES)] if command == "classify" else ["--camera", f"file:{FRAMES}"]
    with pytest.raises(SystemExit) as exit_:
        main([command, *COMMON, *where, f"{option}={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert f"argument {option}: {value}" in last or f"argument {option}: '{value}'" in last
    assert "Traceback" not in err


@pytest.mark.parametrize(("option", "value"), [("--max-frames", "0"), ("--size", "99999x99999")])
def test_run_only_numbers(option, value, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", *COMMON, "--camera", f"file:{FRAMES}", option, value])
    assert f"argument {option}" in capsys.readouterr().err.strip().splitlines()[-1]


def test_numbers_in_range_still_run(capsys) -> None:
    args = ["--scale", "2", "--threads", "2", "--threshold", "0.5", "--min-nucleus-area", "250"]
    assert main(["classify", *COMMON, "--source", str(FRAMES), *args]) == 0
    assert "white cells in 6 frames" in capsys.readouterr().out


def test_library_callers_get_the_same_ranges() -> None:
    bundle = load_bundle(DEFAULT)
    with open_runtime(bundle, runtime="litert") as rt:
        for scale in (float("nan"), float("inf"), SCALE_RANGE[0] / 2, SCALE_RANGE[1] * 2):
            with pytest.raises(WbcError, match="scale must be a number from"):
                Classifier(rt, "field", scale)
    with pytest.raises(WbcError, match="threads must be from"):
        open_runtime(bundle, runtime="litert", threads=THREADS_RANGE[1] + 1)
