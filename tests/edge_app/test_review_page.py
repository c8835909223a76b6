"""Issue 28: `wbc-edge review` answers only its own browser tab, within limits, and only ever
touches its report folder. Every test starts a server on 127.0.0.1, an ephemeral port, and shuts
it down; hostile requests are sent as raw bytes so nothing in a client library cleans them."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_setup import FRAMES, MODEL, copy_of, needs_runtime, review_server

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app import review
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.report_html import NOT_A_CELL
from wbc_edge.edge_app.review import apply_review, make_server

pytestmark = [pytest.mark.edge, needs_runtime]


@pytest.fixture(scope="module")
def made_report(tmp_path_factory) -> Path:
    """A report of the sample frames (6 cells)."""
    out = tmp_path_factory.mktemp("review-page") / "report"
    argv = ["classify", "--model", str(MODEL), "--source", str(FRAMES), "--report", str(out)]
    assert main(argv) == 0
    assert len(json.loads((out / "report.json").read_text())["cells"]) >= 6
    return out


@pytest.fixture
def folder(made_report: Path, tmp_path: Path) -> Path:
    return copy_of(made_report, tmp_path)


@pytest.fixture
def server(folder: Path) -> Iterator:
    with review_server(folder) as srv:
        yield srv


def send(srv, data: bytes, half_close: bool = False) -> bytes:
    """Raw bytes to the server; everything it answers until it closes (bounded by timeouts)."""
    with socket.create_connection(srv.server_address[:2], timeout=15) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def request(
    srv,
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    token: bool = True,
    host: str | None = None,
    origin: str | None = "same",
    headers: dict[str, str] | None = None,
) -> bytes:
    port = srv.server_address[1]
    host = host or f"127.0.0.1:{port}"
    target = path + (f"?token={srv.guard.token}" if token else "")
    lines = [f"{method} {target} HTTP/1.0", f"Host: {host}"]
    if method == "POST":
        if origin == "same":
            origin = f"http://{host}"
        if origin is not None:
            lines.append(f"Origin: {origin}")
        lines.append("Content-Type: application/x-www-form-urlencoded")
        if "Content-Length" not in (headers or {}):
            lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return send(srv, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def corrections(folder: Path) -> dict:
    path = folder / "review.json"
    return json.loads(path.read_text())["corrections"] if path.exists() else {}


def form(**choices: str) -> bytes:
    return urllib.parse.urlencode(choices).encode()


def test_the_page_needs_the_token_and_its_own_host(server, folder) -> None:
    assert status(request(server)) == 200
    assert f"save?token={server.guard.token}" in request(server).decode()
    assert status(request(server, token=False)) == 403
    assert status(request(server, path="/?token=wrong", token=False)) == 403
    port = server.server_address[1]
    answer = request(server, host=f"evil.example:{port}")  # DNS rebinding
    assert status(answer) == 403 and b"EOSINOPHIL" not in answer
    assert status(request(server, host=f"localhost:{port}")) == 200


def test_a_post_from_another_site_changes_nothing(server, folder) -> None:
    body = form(c1="LYMPHOCYTE")
    assert status(request(server, "POST", "/save", body, origin="http://evil.example")) == 403
    assert status(request(server, "POST", "/save", body, token=False)) == 403
    assert status(request(server, "POST", "/save", body, origin=None)) == 403  # no Origin/Referer
    assert status(request(server, "POST", "/done", body, token=False)) == 403
    assert not (folder / "review.json").exists()
    assert status(request(server)) == 200  # /done without the token did not stop it
    port = server.server_address[1]
    referer = {"Referer": f"http://127.0.0.1:{port}/?token=x"}
    answer = request(server, "POST", "/save", body, origin=None, headers=referer)
    assert status(answer) == 303 and corrections(folder) == {"1": "LYMPHOCYTE"}
    assert f"Location: /?token={server.guard.token}".encode() in answer


def test_malformed_requests_are_400_never_a_traceback(server, folder, capsys) -> None:
    injected = b"c1%0d%0aX-Injected:%20yes=LYMPHOCYTE"
    cases = [
        (request(server, "POST", "/save", injected), 400),
        (request(server, "POST", "/save", b"c\xc3\xa9=LYMPHOCYTE"), 400),  # non-ASCII key
        (request(server, "POST", "/save", b"c%C3%A9=LYMPHOCYTE"), 400),
        (request(server, "POST", "/save", b"\xff\xfe"), 400),
        (request(server, "POST", "/save", b"c1=x", headers={"Content-Length": "abc"}), 400),
        (request(server, "POST", "/save", b"c1=x", headers={"Content-Length": "-1"}), 400),
        (request(server, "POST", "/save", form(c999="LYMPHOCYTE")), 400),  # no such cell
        (request(server, "POST", "/save", form(c1="../../x")), 400),  # no such class
        (request(server, "POST", "/nothing", b""), 404),
    ]
    for answer, code in cases:
        assert status(answer) == code, answer[:200]
        head = answer.split(b"\r\n\r\n")[0]
        assert b"X-Injected" not in head and b"Traceback" not in answer
    long_key = b"c" + b"1" * 100_000 + b"=LYMPHOCYTE"
    answer = request(server, "POST", "/save", long_key)
    assert status(answer) == 400 and len(answer) < 1000  # the key is never echoed
    too_big = {"Content-Length": "10000000"}  # refused before a byte of it is read
    answer = request(server, "POST", "/save", b"", headers=too_big)
    assert status(answer) == 413 and len(answer.split(b"\r\n")[0]) < 100
    assert not (folder / "review.json").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_a_body_cut_short_is_not_applied(server, folder) -> None:
    port = server.server_address[1]
    head = (
        f"POST /save?token={server.guard.token} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    answer = send(server, head + form(c1="LYMPHOCYTE"), half_close=True)
    assert status(answer) == 400 and not (folder / "review.json").exists()


def test_idle_clients_time_out_and_are_capped(folder, monkeypatch) -> None:
    monkeypatch.setattr(review, "REQUEST_TIMEOUT", 1.0)
    monkeypatch.setattr(review, "MAX_CLIENTS", 3)
    srv = make_server(folder, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    idle = [socket.create_connection(srv.server_address[:2], timeout=10) for _ in range(3)]
    try:
        extra = socket.create_connection(srv.server_address[:2], timeout=10)
        assert extra.recv(100) == b""  # over the cap: closed at once, no thread
        extra.close()
        for sock in idle:  # each idle client is dropped after the timeout, not kept for ever
            assert closed_by_server(sock)
        assert status(request(srv)) == 200  # slots freed
    finally:
        for sock in idle:
            sock.close()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)
    assert threading.active_count() < 20


def test_parallel_saves_keep_every_correction(server, folder) -> None:
    ids = [str(c["id"]) for c in json.loads((folder / "report.json").read_text())["cells"]][:6]
    results: list[int] = []

    def save(cid: str) -> None:
        results.append(status(request(server, "POST", "/save", form(**{f"c{cid}": NOT_A_CELL}))))

    threads = [threading.Thread(target=save, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [303] * len(ids)
    assert corrections(folder) == dict.fromkeys(ids, NOT_A_CELL)
    assert len(list((folder / "rejected").iterdir())) == len(ids)
    assert not list(folder.glob(".wbc-*.tmp"))  # every write renamed into place


def test_a_truncated_review_json_is_one_line(folder, capsys) -> None:
    apply_review(folder, {"1": NOT_A_CELL})
    text = (folder / "review.json").read_text()
    (folder / "review.json").write_text(text[: len(text) // 2])
    assert main(["review", str(folder), "--no-browser", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"wbc-edge: {folder / 'review.json'}: not valid JSON") and "\n" not in err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_port_is_a_usage_error(port, folder, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["review", str(folder), "--no-browser", "--port", port])
    assert exit_.value.code == 2 and "--port" in capsys.readouterr().err


def edit_report(folder: Path, change) -> None:
    data = json.loads((folder / "report.json").read_text())
    change(data)
    (folder / "report.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d["meta"]["classes"].__setitem__(0, "../../../../tmp/x"), "meta.classes"),
        (lambda d: d["cells"][0].__setitem__("context", "/etc/hostname"), "cells[0].context"),
        (lambda d: d["cells"][0].__setitem__("crop", "/etc/passwd"), "cells[0].crop"),
        (lambda d: d["cells"][0].__setitem__("crop", "../../x.png"), "cells[0].crop"),
        (lambda d: d["cells"][0].__setitem__("id", "<script>alert(1)</script>"), "cells[0].id"),
        (lambda d: d["cells"][0].__setitem__("label", "=cmd|'/c calc'!A1"), "cells[0].label"),
    ],
)
def test_a_crafted_report_is_refused(folder, tmp_path, change, says) -> None:
    edit_report(folder, change)
    with pytest.raises(WbcError) as err:
        make_server(folder, "127.0.0.1", 0)
    assert says in err.value.message and err.value.path == folder / "report.json"
    with pytest.raises(WbcError):
        apply_review(folder, {"2": NOT_A_CELL})
    assert not (folder / "corrections").exists() and not (tmp_path / "tmp").exists()


def test_a_malformed_report_lists_every_problem_naming_the_file(folder, capsys) -> None:
    def change(d):
        d["meta"]["scale"] = "2"
        d["count"].pop("frames")
        d["cells"][0].update(confidence=None, crop="/etc/passwd")

    edit_report(folder, change)
    assert main(["review", str(folder), "--no-browser", "--port", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"wbc-edge: {folder / 'report.json'}: {p}"
        for p in (
            "meta.scale: expected a number, got '2'",
            "count.frames: missing",
            "cells[0].confidence: expected a number, got null",
        )
    ]  # the crop is checked once the types are right: it is refused then

    def fix_types(d):
        d["meta"]["scale"] = 2.0
        d["count"]["frames"] = 1
        d["cells"][0]["confidence"] = 0.5

    edit_report(folder, fix_types)
    with pytest.raises(WbcError, match=r"cells\[0\].crop: must name a file inside"):
        review.load_report(folder)


def test_a_malformed_review_lists_every_problem_naming_the_file(folder) -> None:
    apply_review(folder, {"1": NOT_A_CELL})
    data = json.loads((folder / "review.json").read_text())
    data["corrections"]["999999"] = NOT_A_CELL
    data["version"] = 0
    data["count"]["cells"] = 1.5
    (folder / "review.json").write_text(json.dumps(data))
    with pytest.raises(WbcError) as err:
        review.load_report(folder)
    assert err.value.path == folder / "review.json"
    assert err.value.problems == ["count.cells: expected an integer, got 1.5"]
    data["count"]["cells"] = 1
    (folder / "review.json").write_text(json.dumps(data))
    with pytest.raises(WbcError) as err:
        review.load_report(folder)
    assert err.value.problems == [
        "corrections: no cell #'999999' in the report",
        "version: expected a whole number from 1",
    ]


def test_links_out_of_the_report_folder_are_never_read(folder, tmp_path) -> None:
    secret = tmp_path / "secret.jpg"
    shutil.copyfile(FRAMES / "BloodImage_00000.jpg", secret)
    data = json.loads((folder / "report.json").read_text())
    first = data["cells"][0]
    for key in ("crop", "context"):
        (folder / first[key]).unlink()
        (folder / first[key]).symlink_to(secret)
    html = review.render_html(review.load_report(folder), folder, form=True)
    assert f"<img alt='cell {first['id']}' src=''>" in html  # not embedded
    apply_review(folder, {str(first["id"]): NOT_A_CELL})
    assert not (folder / "rejected").exists()  # the linked file was not copied
