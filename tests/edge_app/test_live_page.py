"""The live page of `run --serve`: the guarded server (token, Host, GET only), the MJPEG stream
and its still fallback, the status a page shows, and a live run feeding it."""

from __future__ import annotations

import http.client
import json
import threading

import numpy as np
import pytest
from repo_paths import REPO

from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.runtime import open_runtime
from wbc_edge.edge_app.classify import Classifier
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.live import LiveOptions, LiveRun
from wbc_edge.edge_app.live_page import LivePage, LiveState, advice
from wbc_edge.edge_app.sources import FileCamera, FrameStream

pytestmark = pytest.mark.edge

FRAMES = REPO / "samples" / "frames"


@pytest.fixture
def page():
    state = LiveState(fps=100.0)
    served = LivePage(state, "127.0.0.1", 0).start()
    yield served
    served.close()


def get(page: LivePage, path: str, token: str | None = None, host: str | None = None):
    port = page.guard.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sep = "&" if "?" in path else "?"
    url = path if token is None else f"{path}{sep}token={token}"
    conn.putrequest("GET", url, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{port}")
    conn.endheaders()
    return conn, conn.getresponse()


def test_every_request_needs_the_token_and_this_host(page) -> None:
    token = page.guard.token
    _, ok = get(page, "/", token)
    assert ok.status == 200 and token in ok.read().decode()
    assert get(page, "/")[1].status == 403
    assert get(page, "/status.json", "wrong")[1].status == 403
    assert get(page, "/", token, host="evil.example:80")[1].status == 403
    assert get(page, "/nothing", token)[1].status == 404
    conn = http.client.HTTPConnection("127.0.0.1", page.guard.port, timeout=10)
    conn.request("POST", f"/?token={token}", body=b"x")
    assert conn.getresponse().status == 405


def test_status_frame_and_stream_show_what_the_loop_published(page) -> None:
    token, state = page.guard.token, page.state
    state.publish_status({"frames": 3, "cells": 2, "advice": advice(["out_of_focus"])})
    state.add_cell("EOSINOPHIL", 0.9, np.full((40, 50, 3), 200, np.uint8))
    status = json.loads(get(page, "/status.json", token)[1].read())
    assert status["frames"] == 3 and status["advice"] == ["focus"]
    assert status["cells_found"][0]["label"] == "EOSINOPHIL"
    view = np.zeros((48, 64, 3), np.uint8)
    assert state.wants_view() is False  # nobody watches: the loop draws nothing

    def publish_when_watched() -> None:
        for _ in range(500):  # bounded: 5 s
            if state.wants_view():
                state.publish_view(view)
                return
            threading.Event().wait(0.01)

    feeder = threading.Thread(target=publish_when_watched)
    feeder.start()
    conn, stream = get(page, "/stream.mjpg", token)
    assert stream.status == 200 and "multipart/x-mixed-replace" in stream.getheader("Content-Type")
    head = stream.fp.readline() + stream.fp.readline()
    assert head.startswith(b"--frame") and b"image/jpeg" in head
    conn.close()
    feeder.join(10)
    _, still = get(page, "/frame.jpg", token)
    assert still.status == 200 and still.read()[:2] == b"\xff\xd8"


def test_a_live_run_feeds_the_page(edge_bundle, tmp_path) -> None:
    bundle = load_bundle(edge_bundle)
    classifier = Classifier(open_runtime(bundle, precision="fp32", runtime="litert"), "field")
    state = LiveState(fps=1000.0)
    state.watch(1)  # someone watches
    camera = FileCamera(str(FRAMES))
    with JsonlWriter(tmp_path / "cells.jsonl") as writer:
        live = LiveRun(classifier, writer, LiveOptions("file:frames", target=100), camera)
        live.page = state
        live.run(FrameStream(camera), threading.Event())
    status = state.status()
    assert state.frame()[:2] == b"\xff\xd8" and status["target"] == 100
    assert status["frames"] >= 1 and [c["name"] for c in status["classes"]] == bundle.classes
    assert status["cells_found"] and all(c["jpeg"] for c in status["cells_found"])
