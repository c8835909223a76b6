"""`wbc-edge run --serve`: a live page on the device for the laptop or tablet by the microscope.

The page shows the annotated camera view (MJPEG, `/stream.mjpg`; `/frame.jpg` is the same view
as a still picture for browsers or screenshots that do not play MJPEG), the running
differential with its 95 % intervals, progress to `--target`, what to do about the frame
(focus, light, a thinner area) and the last cells found. Python's own `http.server`: no
dependency to install on a Pi, and a page this small needs nothing more.

Served on 127.0.0.1 unless `--host` says otherwise, with the review page's rules
(`edge_app.review_guard`): a per-run token on every request, the Host checked, GET only,
a cap on clients. The live loop hands over a view at most `fps` times a second and only while
someone watches, so an unwatched page costs the count nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from wbc_edge.core.page import render
from wbc_edge.core.safe_io import encode_image
from wbc_edge.edge_app.quality import (
    OUT_OF_FOCUS,
    OVER_EXPOSED,
    UNDER_EXPOSED,
)
from wbc_edge.edge_app.review_guard import MAX_CLIENTS, REQUEST_TIMEOUT, Guard, Refused

log = logging.getLogger("wbc_edge.edge_app.live_page")

FPS = 4.0  # views a second handed to the page (the Pi's count comes first)
LAST_CELLS = 8
THUMB = 96  # px of a last cell's picture
STREAM_SECONDS = 3600.0  # one MJPEG connection at most this long (the page reconnects)

# What a technician does about a frame's quality flag.
ADVICE = {
    OUT_OF_FOCUS: "focus",
    UNDER_EXPOSED: "more light (lamp or exposure)",
    OVER_EXPOSED: "less light (lamp or exposure)",
    "no_red_cells": "move to an area with red cells",
    "no_background": "move to a thinner area (no empty glass in view)",
}


class LiveState:
    """What the page shows, handed over by the live loop (thread-safe)."""

    def __init__(self, fps: float = FPS, clock=time.monotonic) -> None:
        self.fps = fps
        self._clock = clock
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self._last = -1e9
        self._status: dict[str, Any] = {"frames": 0}
        self._cells: deque[dict[str, Any]] = deque(maxlen=LAST_CELLS)
        self.watchers = 0

    def watch(self, delta: int) -> None:
        """One more (1) or one fewer (-1) viewer of the stream."""
        with self._cond:
            self.watchers += delta

    def wants_view(self) -> bool:
        """Whether the loop should draw and hand over a view now (someone watches, in time)."""
        return self.watchers > 0 and self._clock() - self._last >= 1.0 / self.fps

    def publish_view(self, view: np.ndarray) -> None:
        jpeg = encode_image(view, ".jpg")
        with self._cond:
            self._jpeg, self._seq, self._last = jpeg, self._seq + 1, self._clock()
            self._cond.notify_all()

    def publish_status(self, status: dict[str, Any]) -> None:
        with self._cond:
            self._status = status

    def add_cell(self, label: str, confidence: float, crop: np.ndarray) -> None:
        h, w = crop.shape[:2]
        f = THUMB / max(h, w, 1)
        small = cv2.resize(crop, (max(1, round(w * f)), max(1, round(h * f))))
        data = base64.b64encode(encode_image(small, ".jpg")).decode("ascii")
        with self._cond:
            self._cells.appendleft({"label": label, "confidence": confidence, "jpeg": data})

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {**self._status, "cells_found": list(self._cells)}

    def frame(self) -> bytes | None:
        with self._cond:
            return self._jpeg

    def next_frame(self, seq: int, timeout: float) -> tuple[int, bytes | None]:
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seq, timeout)
            return self._seq, self._jpeg


def advice(flags: list[str]) -> list[str]:
    """What to do about a frame's quality flags, in a technician's words."""
    return [ADVICE[f] for f in flags if f in ADVICE]


class LivePage:
    """The page's server in a thread: `start()`, `url`, `close()`."""

    def __init__(self, state: LiveState, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.state = state
        handler = type("Handler", (_Handler,), {"page": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.guard = Guard(host, self.server.server_address[1])
        self.clients = threading.BoundedSemaphore(MAX_CLIENTS)
        self.closing = threading.Event()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.guard.url("/")

    def start(self) -> LivePage:
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    page: LivePage
    timeout = REQUEST_TIMEOUT
    server_version = "wbc-edge"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("live page: " + format, *args)

    def do_GET(self) -> None:
        if not self.page.clients.acquire(blocking=False):
            self._refuse(Refused(503, "Service Unavailable: too many clients"))
            return
        try:
            route = self.page.guard.check("GET", self.path, self.headers)
            if route == "/":
                self._send(200, "text/html; charset=utf-8", _page(self.page.guard.token))
            elif route == "/status.json":
                body = json.dumps(self.page.state.status()).encode()
                self._send(200, "application/json", body)
            elif route == "/frame.jpg":
                jpeg = self.page.state.frame()
                if jpeg is None:
                    self.page.state.watch(1)  # ask the loop for a first view
                    _, jpeg = self.page.state.next_frame(0, 5.0)
                    self.page.state.watch(-1)
                if jpeg is None:
                    raise Refused(503, "Service Unavailable: no frame yet")
                self._send(200, "image/jpeg", jpeg)
            elif route == "/stream.mjpg":
                self._stream()
            else:
                raise Refused(404, "Not Found")
        except Refused as exc:
            self._refuse(exc)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        finally:
            self.page.clients.release()

    def do_POST(self) -> None:
        self._refuse(Refused(405, "Method Not Allowed"))

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _stream(self) -> None:
        state = self.page.state
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        state.watch(1)
        try:
            seq, end = 0, time.monotonic() + STREAM_SECONDS
            while not self.page.closing.is_set() and time.monotonic() < end:
                seq, jpeg = state.next_frame(seq, 1.0)
                if jpeg is None:
                    continue
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
        finally:
            state.watch(-1)

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; "
            "script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        )
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, exc: Refused) -> None:
        body = exc.reason.encode()
        self.send_response(exc.status, exc.reason)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


def _page(token: str) -> bytes:
    """The page (templates/live.html) with this run's token."""
    return render("wbc_edge.edge_app", "live.html", token=token).encode()
