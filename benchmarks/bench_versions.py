"""Two code versions' `wbc-edge bench` side by side: both at once, one per core, cores swapped
each round, so both see the same machine (a shared or virtual CPU drifts 10-30 % a minute).

    git worktree add ../wbc-edge-before v0.1.0          # the version to compare against
    python benchmarks/bench_versions.py ../wbc-edge-before --rounds 4 \
        [--source samples/frames] [--runtime litert] [--passes 20]

Each side runs `python -m wbc_edge.edge_app.cli bench --threads 1` on its own checkout's code
(imported as `wbc_edge.*` through a folder of links, as pyproject's package-dir maps them) and
this checkout's bundle and frames. Prints, per artifact and version, the median over the rounds
of each stage's p50 (ms per frame) and of pipeline/bare, as a Markdown table. Needs two cores
and `taskset` (Linux).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("core", "train", "convert", "edge_app")
STAGES = ("colour", "scale", "quality", "find", "preprocess", "infer", "measure", "records")
COLUMNS = (*STAGES, "pipeline", "bare")
FIRST_MS = 6  # the bench row's first ms column (after artifact, runtime, MMAC, cells)


def import_root(checkout: Path, into: Path) -> Path:
    """A folder where `wbc_edge.<part>` is `checkout/<part>`, for PYTHONPATH."""
    pkg = into / "wbc_edge"
    pkg.mkdir(parents=True)
    for part in PARTS:
        if (checkout / part).is_dir():
            (pkg / part).symlink_to((checkout / part).resolve(), target_is_directory=True)
    return into


def bench_command(args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "wbc_edge.edge_app.cli", "bench", "--model", args.model]
    cmd += ["--source", args.source, "--threads", "1", "--passes", str(args.passes)]
    return [*cmd, "--runtime", args.runtime]


def rows_of(output: str) -> dict[str, list[float]]:
    """artifact label -> the p50 of each of COLUMNS and pipeline/bare, from one bench table."""
    rows: dict[str, list[float]] = {}
    header = None
    for line in output.splitlines():
        cells = line.split()
        if cells[:1] == ["artifact"]:
            header = line
        elif header and len(cells) == FIRST_MS + len(COLUMNS) + 3 and cells[-3].endswith("x"):
            label = f"{cells[0]} {cells[1]} on {cells[2]}"
            values = [float(c.split("/")[0]) for c in cells[FIRST_MS:][: len(COLUMNS)]]
            rows[label] = [*values, float(cells[-3].rstrip("x"))]
    return rows


def run_rounds(args: argparse.Namespace, roots: dict[str, Path]) -> dict[tuple[str, str], list]:
    """(artifact, version) -> one row per round."""
    found: dict[tuple[str, str], list] = {}
    names = list(roots)
    for r in range(args.rounds):
        procs = []
        for core, name in enumerate(names if r % 2 == 0 else names[::-1]):
            env = {**os.environ, "PYTHONPATH": str(roots[name])}
            procs.append(
                (
                    name,
                    subprocess.Popen(
                        ["taskset", "-c", str(core), *bench_command(args)],
                        cwd=REPO,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    ),
                )
            )
        for name, proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(
                    f"bench_versions: the {name} bench failed (exit {proc.returncode})"
                )
            for label, values in rows_of(out).items():
                found.setdefault((label, name), []).append(values)
    return found


def table(found: dict[tuple[str, str], list], names: list[str]) -> str:
    lines = ["| artifact, version | " + " | ".join(COLUMNS) + " | pipeline/bare |"]
    lines.append("|---" * (len(COLUMNS) + 2) + "|")
    for label in sorted({label for label, _ in found}):
        for name in names:
            rounds = found.get((label, name))
            if not rounds:
                continue
            med = [statistics.median(col) for col in zip(*rounds, strict=True)]
            cells = [f"{v:.2f}" for v in med[:-1]] + [f"{med[-1]:.2f}x"]
            lines.append(f"| {label}, {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("other", type=Path, help="the other version's checkout (e.g. a git worktree)")
    p.add_argument("--model", default="models/default")
    p.add_argument("--source", default="samples/frames")
    p.add_argument("--runtime", default="litert")
    p.add_argument("--passes", type=int, default=20)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args(argv)
    if not (args.other / "edge_app").is_dir():
        p.error(f"{args.other}: not a wbc-edge checkout (no edge_app/)")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {
            "other": import_root(args.other, Path(tmp) / "other"),
            "this": import_root(REPO, Path(tmp) / "this"),
        }
        found = run_rounds(args, roots)
    print(
        f"{args.rounds} rounds of `wbc-edge bench --source {args.source} --runtime "
        f"{args.runtime} --threads 1 --passes {args.passes}`, both versions at once on cores 0 "
        "and 1 (swapped each round); median of the rounds' p50s, ms per frame"
    )
    print(f"other = {args.other}, this = this checkout")
    print(table(found, list(roots)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
