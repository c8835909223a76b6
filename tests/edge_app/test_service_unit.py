"""docs/wbc-edge.service runs what the README runs: models/default, no fixed scale, a command
the CLI accepts, restarts on failure (and `systemd-analyze verify` accepts it where present)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from repo_paths import REPO

from wbc_edge.edge_app.cli import build_parser

pytestmark = pytest.mark.edge

UNIT = REPO / "docs" / "wbc-edge.service"


def unit_settings() -> dict[str, str]:
    """`Key=value` of the unit's sections (continuation lines joined)."""
    text = UNIT.read_text(encoding="utf-8").replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def wbc_edge_argv() -> list[str]:
    """The arguments of the `wbc-edge` the unit's shell execs (systemd's $$ and %% undone)."""
    exec_start = unit_settings()["ExecStart"].replace("$$", "$").replace("%%", "%")
    argv = shlex.split(exec_start)
    assert argv[:2] == ["/bin/sh", "-c"], "ExecStart runs one shell command"
    script = shlex.split(argv[2])
    i = next(k for k, w in enumerate(script) if w == "exec")
    assert script[i + 1].endswith("/.venv/bin/wbc-edge")
    return script[i + 2 :]


def test_the_unit_runs_the_default_model_with_no_fixed_scale() -> None:
    args = build_parser().parse_args(wbc_edge_argv())
    assert args.command == "run"
    assert args.model.parts[-2:] == ("models", "default")
    assert args.scale is None and args.profile is None
    assert args.camera == "csi://0"
    assert args.jsonl and args.report is not None and args.snapshots is not None


def test_the_unit_restarts_on_failure_and_stops_cleanly() -> None:
    s = unit_settings()
    assert s["Restart"] == "on-failure" and s["KillSignal"] == "SIGTERM"
    assert s["WantedBy"] == "multi-user.target" and s["Type"] == "simple"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    copy = tmp_path / "wbc-edge.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("User=pi\n", ""), encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    errors = [
        line
        for line in done.stderr.splitlines()
        if "wbc-edge.service" in line and "not executable" not in line
    ]
    assert not errors, done.stderr
