"""Issue 30: a sample and operator on every output, every cell confirmed or changed, a signed
review that is read-only and versioned, and a report a lab can file.

Runs the bundled default model on the committed sample frames (6 cells, a few seconds); the
review server binds 127.0.0.1 on an ephemeral port with bounded timeouts.
"""

from __future__ import annotations

import csv
import json
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_setup import FRAMES, MODEL, needs_runtime, review_server

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.identity import name_problem, sample_problem
from wbc_edge.edge_app.report import load_report
from wbc_edge.edge_app.report_html import NOT_A_CELL
from wbc_edge.edge_app.review import apply_review, make_server
from wbc_edge.edge_app.signing import amend_review, sign_review, signature_problem

OPERATOR = "Zoë O'Brien-Tech"

pytestmark = [pytest.mark.edge, needs_runtime]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """A classify run of the sample frames with a sample, an operator, JSONL and a report;
    threshold 0.9 so that some cells are uncertain."""
    out = tmp_path_factory.mktemp("signed")
    argv = ["classify", "--model", str(MODEL), "--source", str(FRAMES), "--threshold", "0.9",
            "--report", str(out / "report"), "--jsonl", str(out / "cells.jsonl"),
            "--sample", "S-1/2026:07", "--operator", OPERATOR]  # fmt: skip
    assert main(argv) == 0
    return {"out": out, "report": out / "report"}


@pytest.fixture
def folder(made: dict, tmp_path: Path) -> Path:
    out = tmp_path / "report"
    shutil.copytree(made["report"], out)
    return out


def decide_all(folder: Path, change: dict[str, str] | None = None) -> dict:
    """Every cell confirmed, except the ones in `change`."""
    cells = load_report(folder)["cells"]
    choices = {str(c["id"]): c["label"] for c in cells} | (change or {})
    return apply_review(folder, choices)


# ---------------------------------------------------------------------------- identity


@pytest.mark.parametrize("good", ["S-1", "ACC2026/00017", "slide_3.b:7#2"])
def test_sample_ids_a_lab_prints_are_accepted(good) -> None:
    assert sample_problem(good) is None


@pytest.mark.parametrize(
    "bad, why",
    [("", "empty"), ("S 1", "only letters"), ("-S1", "only letters"), ("<b>", "only letters"),
     ("A|B^C", "only letters"), ("x" * 65, "longer than 64")],
)  # fmt: skip
def test_bad_sample_ids_are_refused(bad, why) -> None:
    assert why in sample_problem(bad)


def test_names_allow_any_script_but_no_markup_or_control() -> None:
    assert name_problem("Zoë O'Brien-Tech") is None and name_problem("李 明") is None
    for bad in ("<script>", "A\x1b[2J", " A", "A  B", "A|B", "x" * 65):
        assert name_problem(bad) is not None


def test_a_bad_sample_on_the_command_line_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["classify", "--model", str(MODEL), "--source", str(FRAMES), "--sample", "a b"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--sample: 'a b' may hold only letters" in err and "Traceback" not in err


def test_sample_and_operator_reach_the_jsonl_csvs_and_report(made) -> None:
    records = [json.loads(line) for line in (made["out"] / "cells.jsonl").read_text().splitlines()]
    assert records and all(
        r["sample"] == "S-1/2026:07" and r["operator"] == OPERATOR for r in records
    )
    folder = made["report"]
    for name in ("count.csv", "cells.csv"):
        with open(folder / name, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and {(r["sample"], r["operator"]) for r in rows} == {("S-1/2026:07", OPERATOR)}
    meta = json.loads((folder / "report.json").read_text())["meta"]
    assert (meta["sample"], meta["operator"]) == ("S-1/2026:07", OPERATOR)
    html = (folder / "report.html").read_text()
    assert "<dd>S-1/2026:07</dd>" in html and "<dd>Zoë O&#39;Brien-Tech</dd>" in html
    assert "PRELIMINARY" in html and "not yet signed" in html


def test_a_crafted_identity_in_report_json_is_refused(folder) -> None:
    data = json.loads((folder / "report.json").read_text())
    data["meta"]["operator"] = "<img src=x onerror=alert(1)>"
    (folder / "report.json").write_text(json.dumps(data))
    with pytest.raises(WbcError, match=r"meta\.operator: may hold only letters"):
        load_report(folder)


# ---------------------------------------------------------------------------- the filed report


def test_the_report_a_lab_files(made) -> None:
    html = (made["report"] / "report.html").read_text()
    assert "Only 6 white cells.</b> A differential needs at least 100" in html
    assert "<h2>Specimen and signature</h2>" in html and "Reviewed by</dt><dd>not yet" in html
    for term in ("N:C", "gran", "lobes", "2nd", "95 % interval", "raw %", "REVIEW", "sha256"):
        assert f"<dt>{term}</dt>" in html
    assert "@media print" in html and "class=sigline" in html
    assert "name=viewport" in html and "@media (max-width:600px)" in html
    assert "word-break:break-all" not in html and "class=chart viewBox=" in html
    assert "<span class=nw>" in html and "2nd " in html  # measurements never split; runner-up
    assert "href='./cells/00001-context.jpg'" in html  # the context picture, one click away


# ---------------------------------------------------------------------------- confirm and sign


def test_confirming_a_cell_is_recorded_and_clears_its_uncertain_flag(folder) -> None:
    data = load_report(folder)
    unsure = [c for c in data["cells"] if c["uncertain"]]
    assert unsure, "threshold 0.9 leaves some sample cells uncertain"
    cell = unsure[0]
    review = apply_review(folder, {str(cell["id"]): cell["label"]})
    assert review["confirmed"] == [str(cell["id"])] and review["corrections"] == {}
    assert review["count"]["uncertain"] == data["count"]["uncertain"] - 1
    assert review["count"]["reviewed"] == 1
    review = apply_review(folder, {str(cell["id"]): ""})  # back to not reviewed
    assert review["confirmed"] == [] and review["count"]["uncertain"] == data["count"]["uncertain"]


def test_signing_needs_every_cell_and_a_real_name(folder) -> None:
    with pytest.raises(WbcError, match="6 of 6 cells are neither confirmed nor changed"):
        sign_review(folder, "B. Reviewer")
    decide_all(folder)
    with pytest.raises(WbcError, match="reviewer '<b>' may hold only letters"):
        sign_review(folder, "<b>")
    assert load_report(folder)["review"]["signature"] is None


def test_a_signature_records_who_when_and_the_hash_of_what_was_signed(folder) -> None:
    first = load_report(folder)["cells"][0]
    new = next(c for c in load_report(folder)["meta"]["classes"] if c != first["label"])
    decide_all(folder, {str(first["id"]): new})
    review = sign_review(folder, "B. Reviewer")
    sig = review["signature"]
    assert sig["reviewer"] == "B. Reviewer" and sig["time"].endswith("+00:00")
    assert len(sig["sha256"]) == 64 and signature_problem(folder, review) is None
    # read-only: a change is refused, the files stay as signed
    before = (folder / "review.json").read_bytes()
    with pytest.raises(WbcError, match=r"signed by B\. Reviewer .* read-only; amend it"):
        apply_review(folder, {str(first["id"]): first["label"]})
    assert (folder / "review.json").read_bytes() == before
    # the page: final, chart and headline from the reviewed count, and says so
    html = (folder / "report.html").read_text()
    assert "FINAL" in html and "reviewed count, signed by B. Reviewer" in html
    assert "Chart: the reviewed count (6 cells, signed)" in html
    reviewed = {r["class"]: r for r in review["count"]["rows"]}
    assert f"{reviewed[new]['cells']} ({reviewed[new]['percent']:.1f} %)" in html  # the bars
    assert "Electronically signed by B. Reviewer" in html
    assert (folder / "signed" / "report-v1.html").read_text() == html
    # any later edit of what was signed no longer matches its hash
    tampered = json.loads(before)
    tampered["corrections"] = {}
    (folder / "review.json").write_text(json.dumps(tampered))
    assert "no longer matches" in signature_problem(folder, load_report(folder)["review"])


def test_an_amendment_is_a_new_version_and_keeps_the_signed_one(folder) -> None:
    decide_all(folder)
    signed = sign_review(folder, "B. Reviewer")
    review = amend_review(folder)
    assert review["version"] == 2 and review["signature"] is None
    assert review["history"][0]["signature"] == signed["signature"]
    assert review["confirmed"] == signed["confirmed"]  # the decisions carry over
    cell = load_report(folder)["cells"][0]
    apply_review(folder, {str(cell["id"]): NOT_A_CELL})
    html = (folder / "report.html").read_text()
    assert "PRELIMINARY" in html and "Version 1</dt><dd>signed by B. Reviewer" in html
    again = sign_review(folder, "C. Second")
    assert again["version"] == 2 and again["count"]["rejected"] == 1
    assert (folder / "signed" / "report-v1.html").exists()
    assert (folder / "signed" / "report-v2.html").exists()
    assert amend_review(folder)["version"] == 3
    with pytest.raises(WbcError, match="nothing to amend: the review is not signed"):
        amend_review(folder)
    assert (
        main(["classify", "--model", str(MODEL), "--source", str(FRAMES), "--report", str(folder)])
        == 2
    )  # fmt: skip  (a reviewed folder is kept)


# ---------------------------------------------------------------------------- the review page


@pytest.fixture
def server(folder: Path) -> Iterator:
    with review_server(folder) as srv:
        yield srv


def post(srv, route: str, fields: dict[str, str]) -> tuple[int, str]:
    origin = f"http://127.0.0.1:{srv.server_address[1]}"
    body = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(
        f"{origin}/{route}?token={srv.guard.token}", body, {"Origin": origin}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_review_page_has_instructions_keys_and_every_cell_undecided(server, folder) -> None:
    page = urllib.request.urlopen(server.guard.url(), timeout=10).read().decode()
    n = len(load_report(folder)["cells"])
    assert "How to review." in page and "<kbd>Enter</kbd> confirms" in page
    assert page.count("<option value='' selected>(not reviewed)</option>") == n
    assert "id=classes>" in page and "addEventListener('keydown'" in page
    assert "Confirm the rest of" in page and "formaction='sign?token=" in page
    assert f"href='context/1?token={server.guard.token}'" in page


def test_the_context_picture_is_served_with_the_token_only(server, folder) -> None:
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/context/1"
    with urllib.request.urlopen(f"{url}?token={server.guard.token}", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "image/jpeg"
        assert answer.read()[:3] == b"\xff\xd8\xff"
    for bad in (url, f"http://127.0.0.1:{port}/context/999?token={server.guard.token}"):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(bad, timeout=10)
        assert exc.value.code in (403, 404)


def test_sign_and_amend_through_the_page(server, folder) -> None:
    cells = load_report(folder)["cells"]
    some = {f"c{c['id']}": c["label"] for c in cells[:-1]}
    status, text = post(server, "sign", some | {"reviewer": "B. Reviewer"})
    assert status == 400 and "1 of 6 cells are neither confirmed nor changed" in text
    assert "Back to the review" in text
    assert len(load_report(folder)["review"]["confirmed"]) == 5  # what was decided is kept
    every = {f"c{c['id']}": c["label"] for c in cells}
    status, _ = post(server, "sign", every | {"reviewer": "B. Reviewer"})
    assert status == 200
    page = urllib.request.urlopen(server.guard.url(), timeout=10).read().decode()
    assert "<select" not in page and "Amend: start version 2" in page
    status, text = post(server, "save", {"c1": NOT_A_CELL})
    assert status == 400 and "read-only" in text
    status, _ = post(server, "amend", {})
    assert status == 200 and load_report(folder)["review"]["version"] == 2


def test_the_review_server_records_each_signature_in_the_history(folder, tmp_path) -> None:
    from wbc_edge.edge_app.history import list_runs

    db = tmp_path / "h.sqlite"
    srv = make_server(folder, "127.0.0.1", 0, history=db)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        every = {f"c{c['id']}": c["label"] for c in load_report(folder)["cells"]}
        assert post(srv, "sign", every | {"reviewer": "B. Reviewer"})[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)
    (run,) = list_runs(db, "S-1/2026:07")
    assert run["status"] == "final" and run["reviewer"] == "B. Reviewer"
