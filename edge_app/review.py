"""`wbc-edge review REPORT_DIR`: a technician reclassifies cells of a report in a browser.

A small page served on 127.0.0.1 (`--host` to serve elsewhere; no network resources): the
report with a class choice under every cell, uncertain ones first. Saving writes, beside the
model's count:

    review.json          the corrections {cell id: class} and the reviewed count
    count_reviewed.csv   the reviewed count (same columns as count.csv)
    corrections/CLASS/N-context.jpg  each changed cell at training-image scale, a class-folder
                         tree `wbc-train` takes (not-a-cell choices go to rejected/)

and re-renders report.html with both counts. `apply_review` does the work without a server.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import webbrowser
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.report import count_table, load_report, render_report, write_count_csv
from wbc_edge.edge_app.report_html import NOT_A_CELL, render_html

log = logging.getLogger("wbc_edge.edge_app.review")


def apply_review(folder: Path, choices: dict[str, str]) -> dict[str, Any]:
    """Record the technician's class for each cell id given; returns review.json's content.

    A choice equal to the model's label undoes an earlier correction. Unknown ids or classes
    raise WbcError.
    """
    folder = Path(folder)
    data = load_report(folder)
    classes = data["meta"]["classes"]
    cells = {str(c["id"]): c for c in data["cells"]}
    corrections = dict((data.get("review") or {}).get("corrections", {}))
    for cid, label in choices.items():
        if cid not in cells:
            raise WbcError(f"no cell #{cid} in this report", folder / "report.json")
        if label not in (*classes, NOT_A_CELL):
            raise WbcError(f"{label!r} is not a class of this model ({', '.join(classes)})")
        if label == cells[cid]["label"]:
            corrections.pop(cid, None)
        else:
            corrections[cid] = label
    review = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corrections": corrections,
        "count": reviewed_count(data, corrections),
    }
    (folder / "review.json").write_text(json.dumps(review, indent=1) + "\n")
    write_count_csv(folder / "count_reviewed.csv", review["count"])
    _save_corrections(folder, cells, corrections)
    render_report(folder)
    return review


def reviewed_count(data: dict[str, Any], corrections: dict[str, str]) -> dict[str, Any]:
    """The count after corrections (not-a-cell choices leave it), as count_table gives it."""
    classes = data["meta"]["classes"]
    counts = dict.fromkeys(classes, 0)
    rejected = 0
    for c in data["cells"]:
        label = corrections.get(str(c["id"]), c["label"])
        if label == NOT_A_CELL:
            rejected += 1
        else:
            counts[label] += 1
    table = count_table(counts, data["count"]["threshold"], None, data["meta"].get("count_model"))
    unreviewed = [c for c in data["cells"] if c["uncertain"] and str(c["id"]) not in corrections]
    for row in table["rows"]:  # uncertain cells nobody has looked at yet
        row["uncertain"] = sum(c["label"] == row["class"] for c in unreviewed)
    table["uncertain"] = len(unreviewed)
    return table | {"rejected": rejected}


def _save_corrections(folder: Path, cells: dict[str, Any], corrections: dict[str, str]) -> None:
    for sub in ("corrections", "rejected"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    for cid, label in corrections.items():
        cell = cells[cid]
        src = folder / (cell["context"] or cell["crop"])
        dest = folder / "rejected" if label == NOT_A_CELL else folder / "corrections" / label
        dest.mkdir(parents=True, exist_ok=True)
        if src.exists():
            shutil.copyfile(src, dest / f"{Path(cell['source']).stem}-{src.name}")


# ---------------------------------------------------------------------------- the page


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for the review page of `folder` (not started); port 0 picks a free one."""
    folder = Path(folder)
    load_report(folder)  # a folder without a report fails here, before anything listens

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self._page(render_html(load_report(folder), folder, form=True))

        def do_POST(self) -> None:
            action = self.path.strip("/").split("?")[0]
            if action not in ("save", "done"):
                self.send_error(404)
                return
            length = min(int(self.headers.get("Content-Length") or 0), 10_000_000)
            form = parse_qs(self.rfile.read(length).decode("utf-8"))
            choices = {k[1:]: v[0] for k, v in form.items() if k.startswith("c") and v}
            try:
                review = apply_review(folder, choices)
            except WbcError as exc:
                self.send_error(400, str(exc))
                return
            if action == "done":
                n = review["count"]["cells"]
                self._page(
                    f"<p>Saved: {len(review['corrections'])} corrections, {n} cells. "
                    "You can close this page.</p>"
                )
                threading.Thread(target=self.server.shutdown, daemon=True).start()
                return
            self.send_response(303)
            self.send_header("Location", "/")
            self.end_headers()

        def _page(self, html: str) -> None:
            body = html.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise WbcError(f"cannot listen on {host}:{port} ({exc.strerror}); try --port 0") from None


def serve_review(
    folder: Path, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True
) -> None:
    """Serve the review page until the technician presses "Save and finish" (or Ctrl-C)."""
    server = make_server(folder, host, port)
    url = f"http://{host}:{server.server_address[1]}/"
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
