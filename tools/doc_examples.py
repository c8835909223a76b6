"""Run the command examples quoted in README.md and docs/*.md and check (or rewrite) their output.

A quoted output is marked in the markdown by an HTML comment naming the command that made it,
the fenced block, and a closing comment:

    <!-- doc-example prompt: wbc-edge classify --model models/default --source samples/frames -->
    ```
    $ wbc-edge classify --model models/default --source samples/frames
    differential count (...)
    ```
    <!-- /doc-example -->

`python tools/doc_examples.py --write` reruns every marked command and replaces each block that
differs from its run (a block that matches keeps the timings it was written with);
`--check` reruns them and exits 1 with a diff naming the doc, the line and the command of each
block that differs. Each command runs in a fresh scratch folder that holds `models/` and
`samples/` (links to the repository's), with HOME, `WBC_HISTORY` and `WBC_MODELS` inside it, so
the paths it prints are the ones a user types from the repository root.

Options before the colon (space-separated; a regex in quotes):

- `prompt`: the block starts with `$ COMMAND`.
- `lines=A-B` (or `lines=A`): keep only these output lines (1-based); `more` adds a `...` line.
- `match='REGEX'`: keep only the output lines the regex finds something in.
- `key=NAME`: each kept line is a JSON record; show only its `"NAME": value`.
- `setup=NAME`: prepare the scratch folder first (`SETUPS`: `signed-report`).
- `cpu`: the figures come from a CPU's kernels (see the normalisation rules).

What truly varies from run to run is normalised in both the doc and the fresh output before
they are compared (`--write` writes the real output); every other number, counts, percentages,
confidences, boxes and classes included, must match exactly:

1. a frame rate: `35.6 frames/s` -> `# frames/s`;
2. the `--stats` timing table: every number (and the spaces that align it) in the rows under
   its `stage  p50 ms  p95 ms` header;
3. a UTC time stamp (`2026-12-04T21:38:37+00:00`) and the signature hash of a signed review
   (it covers the signing time);
4. in a `cpu` block only (`wbc-edge verify`: INT8 and OpenVINO kernels differ between CPUs):
   the 4-decimal agreement and |Δp| figures and OpenVINO's inference precision (`f32`, `bf16`).

The scratch folder itself is always written as `~` (it is the run's HOME).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from wbc_edge.core.safe_io import atomic_write

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/*.md")
LINKED = ("models", "samples")  # what a user has at the repository root
TIMEOUT_S = 300

OPEN = re.compile(r"^<!-- doc-example(?P<opts>[^:]*): (?P<cmd>.+?) -->$")
CLOSE = "<!-- /doc-example -->"

FRAME_RATE = re.compile(r"\d+(\.\d+)? frames/s")
STATS_HEADER = re.compile(r"^\s*stage\s+p50 ms\s+p95 ms\s*$")
TIME_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
SIGNATURE = re.compile(r"(signature|Signature sha256)(\W+)[0-9a-f]{64}")
NUMBER = re.compile(r"\d+(\.\d+)?")
STATS_FIGURE = re.compile(r"\s+\d+(\.\d+)?")
CPU_FIGURE = re.compile(r"\b\d\.\d{4}\b")
OPENVINO_PRECISION = re.compile(r"openvino \((f32|bf16|f16)\)")


@dataclass
class Block:
    """One marked example: where it is, what runs, and the text the doc quotes now."""

    doc: Path
    line: int  # 1-based line of the opening comment
    command: str
    options: dict[str, str]
    start: int  # index of the first line inside the fence
    end: int  # index of the closing fence
    quoted: list[str]

    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line} ({self.command})"


class DocExampleError(Exception):
    """A marker the script cannot use: one line naming the doc and the line."""


def parse_options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for word in shlex.split(text):
        key, _, value = word.partition("=")
        if key not in ("prompt", "lines", "more", "match", "key", "setup", "cpu"):
            raise DocExampleError(f"unknown option {key!r}")
        options[key] = value
    return options


def find_blocks(doc: Path) -> list[Block]:
    """The marked examples of one markdown file, in order."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks = []
    for i, line in enumerate(lines):
        found = OPEN.match(line)
        if not found:
            continue
        where = f"{doc.relative_to(ROOT)}:{i + 1}"
        try:
            options = parse_options(found["opts"])
        except (DocExampleError, ValueError) as exc:
            raise DocExampleError(f"{where}: {exc}") from None
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            raise DocExampleError(f"{where}: the marker must be followed by a fenced block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        if end is None or end + 1 >= len(lines) or lines[end + 1] != CLOSE:
            raise DocExampleError(f"{where}: the fenced block must be followed by {CLOSE}")
        blocks.append(Block(doc, i + 1, found["cmd"], options, i + 2, end, lines[i + 2 : end]))
    return blocks


def docs() -> list[Path]:
    return sorted({p for pattern in DOCS for p in ROOT.glob(pattern)})


def console_script(name: str) -> list[str]:
    """argv for one of the project's commands, run by this Python (no PATH lookup)."""
    for ep in entry_points(group="console_scripts"):
        if ep.name == name:
            module, _, func = ep.value.partition(":")
            code = f"import sys; sys.argv[0] = {name!r}; from {module} import {func}; "
            code += f"sys.exit({func}())"
            return [sys.executable, "-c", code]
    raise DocExampleError(f"{name}: not an installed command of this project")


def setup_signed_report(scratch: Path, env: dict[str, str]) -> None:
    """The report of docs/edge.md's review example: the sample frames at threshold 0.9, the
    least confident cell changed to its runner-up, the others confirmed, signed, recorded."""
    from wbc_edge.edge_app.review import apply_review, record_quietly
    from wbc_edge.edge_app.signing import sign_review

    run(
        "wbc-edge classify --model models/default --source samples/frames --threshold 0.9 "
        "--report out/report --sample S-1 --operator 'A. Tech'",
        scratch,
        env,
    )
    folder = scratch / "out" / "report"
    cells = json.loads((folder / "report.json").read_text(encoding="utf-8"))["cells"]
    choices = {str(c["id"]): c["label"] for c in cells}
    low = min(cells, key=lambda c: c["confidence"])
    others = {k: p for k, p in low["probs"].items() if k != low["label"]}
    choices[str(low["id"])] = max(others, key=others.__getitem__)
    apply_review(folder, choices)
    sign_review(folder, "B. Reviewer")
    record_quietly(Path(env["WBC_HISTORY"]), folder)


SETUPS: dict[str, Callable[[Path, dict[str, str]], None]] = {"signed-report": setup_signed_report}


def run(command: str, scratch: Path, env: dict[str, str]) -> str:
    """stdout and stderr of one command, as a terminal shows them, scratch folder as `~`."""
    argv = shlex.split(command)
    proc = subprocess.run(
        console_script(argv[0]) + argv[1:],
        cwd=scratch,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc.stdout.replace(str(scratch), "~")


def output_of(block: Block) -> list[str]:
    """Run the block's command in a fresh scratch folder; the lines the block should hold."""
    with tempfile.TemporaryDirectory(prefix="doc-example-") as tmp:
        scratch = Path(tmp).resolve()
        for name in LINKED:
            (scratch / name).symlink_to(ROOT / name, target_is_directory=True)
        env = {
            **os.environ,
            "HOME": str(scratch),
            "WBC_HISTORY": str(scratch / "history.sqlite"),
            "WBC_MODELS": str(scratch / "installed-models"),
            "PYTHONUNBUFFERED": "1",
            "TZ": "UTC",
        }
        if "setup" in block.options:
            setup = SETUPS.get(block.options["setup"])
            if setup is None:
                raise DocExampleError(f"{block.name()}: no setup {block.options['setup']!r}")
            setup(scratch, env)
        lines = run(block.command, scratch, env).splitlines()
    return select(block, lines)


def select(block: Block, lines: list[str]) -> list[str]:
    opts = block.options
    if "lines" in opts:
        first, _, last = opts["lines"].partition("-")
        lines = lines[int(first) - 1 : int(last or first)]
    if "match" in opts:
        pattern = re.compile(opts["match"])
        lines = [line for line in lines if pattern.search(line)]
    if "key" in opts:
        lines = [f'"{opts["key"]}": {json.dumps(json.loads(line)[opts["key"]])}' for line in lines]
    if "more" in opts:
        lines = [*lines, "..."]
    if "prompt" in opts:
        lines = [f"$ {block.command}", *lines]
    return [line.rstrip() for line in lines]


def normalise(lines: list[str], cpu: bool) -> list[str]:
    """The lines with what varies between runs replaced by `#` (the module docstring's rules)."""
    out = []
    in_stats = False
    for line in lines:
        if STATS_HEADER.match(line):
            in_stats = True
        elif in_stats and line.startswith("  ") and NUMBER.search(line):
            line = STATS_FIGURE.sub(" #", line)  # a wider figure shifts the columns
        else:
            in_stats = False
        line = FRAME_RATE.sub("# frames/s", line)
        line = TIME_STAMP.sub("<time>", line)
        line = SIGNATURE.sub(r"\1\2<sha256>", line)
        if cpu:
            line = CPU_FIGURE.sub("#", line)
            line = OPENVINO_PRECISION.sub("openvino (#)", line)
        out.append(line)
    return out


def check(blocks: list[Block]) -> list[str]:
    """A diff per block whose quoted output differs from a fresh run's (normalised)."""
    problems = []
    for block in blocks:
        cpu = "cpu" in block.options
        want = normalise(output_of(block), cpu)
        have = normalise(block.quoted, cpu)
        if want != have:
            diff = difflib.unified_diff(have, want, "in the doc", "a run now", lineterm="")
            problems.append(f"{block.name()}: differs from a run\n" + "\n".join(diff))
    return problems


def write(blocks: list[Block]) -> int:
    """Replace each block that differs from a fresh run (normalised, as `check` compares) with
    that run's lines; returns how many changed. A block that matches keeps its figures."""
    changed = 0
    by_doc: dict[Path, list[Block]] = {}
    for block in blocks:
        by_doc.setdefault(block.doc, []).append(block)
    for doc, doc_blocks in by_doc.items():
        lines = doc.read_text(encoding="utf-8").splitlines()
        before = changed
        for block in reversed(doc_blocks):  # from the end: earlier indices stay valid
            fresh = output_of(block)
            cpu = "cpu" in block.options
            if normalise(fresh, cpu) != normalise(block.quoted, cpu):
                lines[block.start : block.end] = fresh
                changed += 1
        if changed > before:  # a doc whose blocks all match is left as it is
            atomic_write(doc, "\n".join(lines) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="doc_examples", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="rerun the examples, diff, exit 1")
    mode.add_argument("--write", action="store_true", help="rerun the examples, rewrite blocks")
    mode.add_argument("--list", action="store_true", help="list the marked examples")
    parser.add_argument("docs", nargs="*", type=Path, help="markdown files (default: all)")
    args = parser.parse_args(argv)
    try:
        files = [p.resolve() for p in args.docs] or docs()
        blocks = [b for doc in files for b in find_blocks(doc)]
        if args.list:
            print("\n".join(b.name() for b in blocks))
            return 0
        if args.write:
            print(f"doc_examples: {write(blocks)} of {len(blocks)} block(s) rewritten")
            return 0
        problems = check(blocks)
    except (DocExampleError, subprocess.SubprocessError) as exc:
        print(f"doc_examples: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    print(f"doc_examples: {len(blocks) - len(problems)} of {len(blocks)} block(s) match a run")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
