"""`wbc-edge review REPORT_DIR`: a technician confirms or changes every cell and signs.

A small page served on 127.0.0.1 (`--host` to serve elsewhere; no network resources): the
report with a class choice under every cell, uncertain ones first, keyboard shortcuts, the
runner-up class and a link to each cell's context picture (`/context/ID`). Saving writes,
beside the model's count:

    review.json          the decisions (changed: {cell id: class}, confirmed: [ids]), the
                         reviewed count, the signature and earlier versions (`signing`)
    count_reviewed.csv   the reviewed count (same columns as count.csv)
    corrections/CLASS/N-context.jpg  each changed cell at training-image scale, a class-folder
                         tree `wbc-train` takes (not-a-cell choices go to rejected/)
    signed/report-vN.html  the page as signed, per signed version

and re-renders report.html. `apply_review`, `signing.sign_review` and `signing.amend_review` do
the work without a server.
"""

from __future__ import annotations

import json
import logging
import threading
import webbrowser
from collections.abc import Iterable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from wbc_edge.core.class_names import is_class_name
from wbc_edge.core.errors import WbcError
from wbc_edge.core.json_limits import read_limited
from wbc_edge.core.page import render
from wbc_edge.core.safe_io import safe_file_stem
from wbc_edge.edge_app.output_folder import OutputFolder
from wbc_edge.edge_app.report import count_csv, count_table, load_report, render_report
from wbc_edge.edge_app.report_check import confined
from wbc_edge.edge_app.report_html import NOT_A_CELL, render_html
from wbc_edge.edge_app.review_guard import (
    MAX_CLIENTS,
    REQUEST_TIMEOUT,
    Guard,
    Refused,
    content_length,
    form_text,
    parse_choices,
    read_body,
)
from wbc_edge.edge_app.signing import amend_review, sign_review

log = logging.getLogger("wbc_edge.edge_app.review")
CONTEXT_BYTES = 50_000_000  # largest crop copied into corrections/
SAVE_LOCK = threading.Lock()  # one save at a time, whichever server or caller


def apply_review(folder: Path, choices: dict[str, str]) -> dict[str, Any]:
    """Record the technician's decision for each cell id given; returns review.json's content.

    A choice equal to the model's label confirms the cell, another class (or NOT_A_CELL) changes
    it, "" sets it back to not reviewed. Unknown ids or classes raise WbcError, and so does a
    signed review (read-only: `signing.amend_review` starts a new version). Saves are serialised
    (one lock), each file is written atomically, and only files wbc-edge wrote are ever
    replaced or removed (`OutputFolder`).
    """
    folder = Path(folder)
    with SAVE_LOCK:
        data = load_report(folder)
        review = data.get("review") or new_review(data)
        if review.get("signature"):
            sig = review["signature"]
            raise WbcError(
                f"version {review.get('version', 1)} was signed by {sig['reviewer']} at "
                f"{sig['time']} and is read-only; amend it to start version "
                f"{review.get('version', 1) + 1}",
                folder / "review.json",
            )
        classes = data["meta"]["classes"]
        cells = {str(c["id"]): c for c in data["cells"]}
        corrections = dict(review.get("corrections", {}))
        confirmed = set(review.get("confirmed", []))
        for cid, label in choices.items():
            if cid not in cells:
                raise WbcError(f"no cell #{cid[:12]} in this report", folder / "report.json")
            if label not in ("", *classes, NOT_A_CELL):
                known = ", ".join(classes)
                raise WbcError(f"{label[:70]!r} is not a class of this model ({known})")
            corrections.pop(cid, None)
            confirmed.discard(cid)
            if label == cells[cid]["label"]:
                confirmed.add(cid)
            elif label:
                corrections[cid] = label
        review = {
            **review,
            "date": _now(),
            "corrections": corrections,
            "confirmed": sorted(confirmed, key=int),
        }
        write_review(folder, data, review).save()
    return review


def new_review(data: dict[str, Any]) -> dict[str, Any]:
    """The first version of a report's review: nothing decided, not signed."""
    return {
        "version": 1,
        "date": _now(),
        "corrections": {},
        "confirmed": [],
        "count": reviewed_count(data, {}),
        "signature": None,
        "history": [],
    }


def write_review(folder: Path, data: dict[str, Any], review: dict[str, Any]) -> OutputFolder:
    """Write review.json (its count recomputed), count_reviewed.csv, the corrections' pictures
    and report.html; returns the folder, whose manifest the caller saves. Call under
    SAVE_LOCK."""
    review["count"] = reviewed_count(data, review["corrections"], review.get("confirmed", []))
    out = OutputFolder(folder)
    out.write("review.json", json.dumps(review, indent=1) + "\n")
    out.write("count_reviewed.csv", count_csv(review["count"], data["meta"]))
    cells = {str(c["id"]): c for c in data["cells"]}
    _save_corrections(out, cells, review["corrections"])
    render_report(folder, out=out)
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def reviewed_count(
    data: dict[str, Any], corrections: dict[str, str], confirmed: Iterable[str] = ()
) -> dict[str, Any]:
    """The count after review, as count_table gives it: the model's count with each changed
    cell moved (not-a-cell choices leave it). `uncertain` counts the uncertain cells nobody has
    confirmed or changed yet. A reviewed count is each cell's verified class counted (raw,
    Wilson intervals): the model's confusion correction does not apply to a person's labels.
    A live report's gallery may hold only the first cells of its count."""
    counts = {r["class"]: r["cells"] for r in data["count"]["rows"]}
    uncertain = {r["class"]: r["uncertain"] for r in data["count"]["rows"]}
    confirmed = set(confirmed)
    rejected = 0
    for c in data["cells"]:
        cid = str(c["id"])
        label = corrections.get(cid)
        if c["uncertain"] and (label is not None or cid in confirmed):
            uncertain[c["label"]] -= 1  # looked at: no longer an uncertain cell to check
        if label is None:
            continue
        counts[c["label"]] -= 1
        if label == NOT_A_CELL:
            rejected += 1
        else:
            counts[label] += 1
    table = count_table(counts, data["count"]["threshold"], uncertain, None)
    reviewed = len(set(corrections) | confirmed)
    return table | {"rejected": rejected, "reviewed": reviewed}


def _save_corrections(
    out: OutputFolder, cells: dict[str, Any], corrections: dict[str, str]
) -> None:
    """corrections/CLASS/ and rejected/ as the corrections say: the copies wbc-edge made before
    are replaced, files placed there by hand are left alone."""
    for sub in ("corrections/", "rejected/"):
        for name in out.owned_under(sub):
            out.remove(name)
    for cid, label in corrections.items():
        cell = cells[cid]
        src = confined(out.folder, cell["context"] or cell["crop"])
        if label != NOT_A_CELL and not is_class_name(label):
            continue  # never a folder name outside the safe set (checked at load too)
        dest = "rejected" if label == NOT_A_CELL else f"corrections/{label}"
        if src is None or not src.is_file():
            continue
        try:
            data = read_limited(src, CONTEXT_BYTES)
        except WbcError as exc:
            log.warning("%s", exc)
            continue
        stem = safe_file_stem(Path(cell["source"]).stem)
        out.write_beside(f"{dest}/{stem}-{safe_file_stem(src.name)}", data)


# ---------------------------------------------------------------------------- the page


class ReviewServer(ThreadingHTTPServer):
    """A threading server that serves at most MAX_CLIENTS connections at once."""

    daemon_threads = True
    guard: Guard
    history: Path | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many at once: closed, no thread
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(
    folder: Path, host: str = "127.0.0.1", port: int = 0, history: Path | None = None
) -> ReviewServer:
    """A server for the review page of `folder` (not started); port 0 picks a free one.
    Its `guard.url()` is the address to open (with the run's token); each POST is recorded in
    the `history` database when given."""
    folder = Path(folder)
    load_report(folder)  # a folder without a report fails here, before anything listens

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT  # a socket timeout: an idle client cannot hold a thread

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            try:
                route = self.server.guard.check(method, self.path, self.headers)
                if method == "GET":
                    self._get(route)
                else:
                    self._post(route)
            except Refused as exc:
                self._refuse(exc.status, exc.reason)
            except WbcError as exc:
                self._refuse(400, "Bad Request", exc.message)
            except (ConnectionError, TimeoutError):
                self.close_connection = True
            except Exception:  # never a traceback to the browser or the terminal
                log.exception("review: %s %s failed", method, self.path[:80])
                self._refuse(500, "Internal Server Error")

        def _get(self, route: str) -> None:
            if route.startswith("/context/"):
                self._context(route.removeprefix("/context/"))
                return
            if route not in ("/", "/index.html"):
                raise Refused(404, "Not Found")
            token = self.server.guard.token
            self._page(render_html(load_report(folder), folder, form=True, token=token))

        def _context(self, cid: str) -> None:
            """The picture of cell `cid` at training-image scale (a cell the report lists)."""
            cells = {str(c["id"]): c for c in load_report(folder)["cells"]}
            cell = cells.get(cid)
            path = confined(folder, cell["context"] or cell["crop"]) if cell else None
            if path is None or not path.is_file():
                raise Refused(404, "Not Found")
            kind = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
            self._send(200, read_limited(path, CONTEXT_BYTES), kind)

        def _post(self, route: str) -> None:
            if route not in ("/save", "/done", "/sign", "/amend"):
                raise Refused(404, "Not Found")
            body = read_body(self.rfile, content_length(self.headers))
            try:
                review = self._apply(route, body)
            finally:
                if self.server.history is not None:
                    record_quietly(self.server.history, folder)
            if route == "/done":
                n = review["count"]["cells"]
                saved = f"Saved: {len(review['corrections'])} corrections, {n} cells."
                self._page(message_page("Review saved", [f"{saved} You can close this page."]))
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return
            self.send_response(303)
            self.send_header("Location", f"/?token={self.server.guard.token}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _apply(self, route: str, body: bytes) -> dict[str, Any]:
            if route == "/amend":
                return amend_review(folder)
            review = apply_review(folder, parse_choices(body))
            if route == "/sign":
                review = sign_review(folder, form_text(body, "reviewer"))
            return review

        def _page(self, html: str, status: int = 200) -> None:
            self._send(status, html.encode("utf-8"), "text/html; charset=utf-8")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "same-origin")
            self.end_headers()
            self.wfile.write(body)

        def _refuse(self, status: int, reason: str, detail: str = "") -> None:
            self.close_connection = True
            lines, link = [reason], None
            if detail:  # a refused save or signature: back to the page, decisions kept
                lines.append(detail[:300])
                link = (f"/?token={self.server.guard.token}", "Back to the review")
            text = message_page(reason, lines, link)
            try:
                self.send_response(status, reason)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(text.encode())))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(text.encode())
            except OSError:
                pass

        def send_error(self, code: int, message: str | None = None, explain: str | None = None):
            """http.server's own errors (a malformed request line): a fixed reason only."""
            self._refuse(code, "Bad Request" if code == 400 else "Error")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    try:
        server = ReviewServer((host, port), Handler)
    except OSError as exc:
        raise WbcError(f"cannot listen on {host}:{port} ({exc.strerror}); try --port 0") from None
    except OverflowError:
        raise WbcError(f"port {port} is not from 0 to 65535") from None
    server.guard = Guard(host, server.server_address[1])
    server.history = history
    return server


def message_page(title: str, lines: list[str], link: tuple[str, str] | None = None) -> str:
    """A short page of `lines` (a refusal, "saved"), with a `link` (href, text) when given."""
    return render("wbc_edge.edge_app", "message.html", title=title, lines=lines, link=link)


def record_quietly(history: Path, folder: Path) -> None:
    """Record the report in the history database; a failure is a warning, never a lost review."""
    from wbc_edge.edge_app.history import record_report

    try:
        record_report(history, folder)
    except WbcError as exc:
        log.warning("history not updated: %s", exc)


def serve_review(
    folder: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = True,
    history: Path | None = None,
) -> None:
    """Serve the review page until the technician presses "Save and finish" (or Ctrl-C); each
    save, signature and amendment is recorded in the `history` database when given."""
    server = make_server(folder, host, port, history)
    url = server.guard.url()
    print(f"review {folder}: open {url} (Ctrl-C to stop; saved corrections are kept)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    review = load_report(folder).get("review")
    if review:
        print(
            f"reviewed count: {folder / 'count_reviewed.csv'}; corrections: "
            f"{folder / 'corrections'}"
        )
