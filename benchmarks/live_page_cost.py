"""What the live page costs the count: frames/s and latency with and without it.

    python benchmarks/live_page_cost.py [--model models/default] [--rounds 3] [--threads 1]

A replay of the sample frames panned in small steps (120 frames, 480x360) runs through
`wbc-edge run`'s loop (`LiveRun`) three ways, interleaved each round so all see the same
machine: no page; the page served but nobody watching; the page watched (a client reading
the MJPEG stream, views handed over at `live_page.FPS` a second). Prints the median over the
rounds of frames/s, the whole frame's p50 and the latency p50 (frame read -> records written).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
from pathlib import Path

import numpy as np

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.decode import decode_stain_image
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.live import LiveOptions, LiveRun
from wbc_edge.edge_app.live_page import LivePage, LiveState
from wbc_edge.edge_app.sources import FrameStream
from wbc_edge.edge_app.sources.base import Camera

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "frames"


class Replay(Camera):
    """Frames from memory, as a `file:` replay delivers them (never dropped)."""

    name, live, continuous = "replay", False, True

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.i = frames, 0

    def open(self) -> None:
        self.i = 0

    def read(self) -> np.ndarray | None:
        self.i += 1
        return self.frames[self.i - 1] if self.i <= len(self.frames) else None

    def close(self) -> None:
        pass


def clip() -> list[np.ndarray]:
    fields = [decode_stain_image(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    fields = [f for f in fields if f.shape[:2] == (480, 640)]
    return [
        np.ascontiguousarray(f[40 + 4 * i : 400 + 4 * i, 20 + 8 * i : 500 + 8 * i])
        for f in fields
        for i in range(24)
    ]


def watch(page: LivePage, stop: threading.Event) -> None:
    """A browser on the MJPEG stream: reads parts until `stop`."""
    conn = http.client.HTTPConnection("127.0.0.1", page.guard.port, timeout=10)
    conn.request("GET", f"/stream.mjpg?token={page.guard.token}")
    resp = conn.getresponse()
    while not stop.is_set() and resp.fp.readline():
        pass
    conn.close()


def one_run(classifier: Classifier, frames, mode: str, tmp: Path) -> tuple[float, float, float]:
    camera = Replay(frames)
    page = stop = None
    live_state = None
    if mode != "no page":
        live_state = LiveState()
        page = LivePage(live_state, "127.0.0.1", 0).start()
        if mode == "page watched":
            stop = threading.Event()
            threading.Thread(target=watch, args=(page, stop), daemon=True).start()
    with JsonlWriter(tmp / "cells.jsonl") as writer:
        live = LiveRun(classifier, writer, LiveOptions("replay"), camera)
        live.page = live_state
        live.run(FrameStream(camera), threading.Event())
    if stop is not None:
        stop.set()
    if page is not None:
        page.close()
    t = live.times
    p50 = statistics.median(t.totals) * 1000
    return t.fps(), p50, statistics.median(t.latencies) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=Path("models/default"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    bundle = load_bundle(args.model)
    rt = open_runtime(bundle, None, "auto", None, args.threads)
    frames = clip()
    modes = ("no page", "page, nobody watching", "page watched")
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            with tempfile.TemporaryDirectory() as tmp:
                results[m].append(one_run(Classifier(rt, "field"), frames, m, Path(tmp)))
    print(f"{len(frames)} frames 480x360, {rt.name} {rt.precision}, {args.threads} thread(s)")
    print("| live page | frames/s | frame p50 ms | latency p50 ms |")
    print("| --- | --- | --- | --- |")
    for m in modes:
        fps, p50, lat = (statistics.median(v) for v in zip(*results[m], strict=True))
        print(f"| {m} | {fps:.1f} | {p50:.1f} | {lat:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
