"""Issue 30: the run history (SQLite, versioned schema) and the exports a lab system reads, FHIR
R4 and HL7 v2.5.1 ORU^R01, validated with independent libraries from the `dev` extra
(fhirclient's R4 4.0.1 models in strict mode; hl7apy's strict v2.5.1 structure, python-hl7 as
a second reader)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from edge_setup import FRAMES, MODEL, copy_of, needs_runtime

from wbc_edge.core.errors import WbcError
from wbc_edge.edge_app import history
from wbc_edge.edge_app.cli import main
from wbc_edge.edge_app.export_hl7 import escape_hl7
from wbc_edge.edge_app.lab_result import LOINC, loinc_for
from wbc_edge.edge_app.report import load_report
from wbc_edge.edge_app.review import apply_review
from wbc_edge.edge_app.signing import sign_review

pytestmark = [pytest.mark.edge, needs_runtime]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lab") / "report"
    argv = ["classify", "--model", str(MODEL), "--source", str(FRAMES), "--report", str(out),
            "--sample", "S-1", "--operator", "A. Tech",
            "--history", str(out.parent / "made.sqlite")]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.fixture
def folder(made: Path, tmp_path: Path) -> Path:
    return copy_of(made, tmp_path)


def signed(folder: Path, reviewer: str = "B. Reviewer") -> dict:
    cells = load_report(folder)["cells"]
    choices = {str(c["id"]): c["label"] for c in cells}
    first = cells[0]
    choices[str(first["id"])] = next(
        c for c in load_report(folder)["meta"]["classes"] if c != first["label"]
    )
    apply_review(folder, choices)
    return sign_review(folder, reviewer)


# ---------------------------------------------------------------------------- history


def test_a_report_run_is_recorded_and_listed_by_sample(made, capsys) -> None:
    db = made.parent / "made.sqlite"
    runs = history.list_runs(db, "S-1")
    assert len(runs) == 1
    run = runs[0]
    data = load_report(made)
    assert run["run_id"] == data["meta"]["run_id"] and run["operator"] == "A. Tech"
    assert run["bundle_sha256"] == data["meta"]["bundle_sha256"]
    assert json.loads(run["model_count"]) == {r["class"]: r["cells"] for r in data["count"]["rows"]}
    assert run["status"] == "preliminary" and run["reviewed_count"] is None
    assert history.list_runs(db, "S-2") == []
    assert main(["history", "--sample", "S-1", "--history", str(db)]) == 0
    out = capsys.readouterr().out
    assert "sample S-1  operator A. Tech" in out and "preliminary, not signed" in out


def test_a_run_with_malformed_counts_is_one_error_naming_the_database(made, tmp_path) -> None:
    db = tmp_path / "h.sqlite"
    shutil.copyfile(made.parent / "made.sqlite", db)
    with sqlite3.connect(db) as con:
        con.execute("""UPDATE runs SET model_count = '{"EOSINOPHIL": "x"}', estimate = 'nope'""")
    (run,) = history.list_runs(db)
    with pytest.raises(WbcError) as err:
        history.format_runs([run], db)
    assert err.value.path == db
    where = f"runs[{run['run_id']}]"
    assert set(err.value.problems) == {
        f"{where}.model_count.EOSINOPHIL: expected an integer, got 'x'",
        f"{where}.estimate: not valid JSON",
    }


def test_a_signed_review_updates_its_run_and_keeps_every_signature(folder, tmp_path) -> None:
    db = tmp_path / "h.sqlite"
    history.record_report(db, folder)
    review = signed(folder)
    history.record_report(db, folder)
    from wbc_edge.edge_app.signing import amend_review

    amend_review(folder)
    sign_review(folder, "C. Second")
    history.record_report(db, folder)
    (run,) = history.list_runs(db)
    assert run["status"] == "final" and run["reviewer"] == "C. Second"
    assert run["review_version"] == 2
    assert json.loads(run["reviewed_count"]) == {
        r["class"]: r["cells"] for r in load_report(folder)["review"]["count"]["rows"]
    }
    with sqlite3.connect(db) as con:
        sigs = con.execute("SELECT version, reviewer, sha256 FROM signatures ORDER BY version")
        sigs = sigs.fetchall()
    assert sigs[0] == (1, "B. Reviewer", review["signature"]["sha256"])
    assert [s[1] for s in sigs] == ["B. Reviewer", "C. Second"]


def test_a_version_1_database_is_migrated_and_keeps_its_rows(folder, tmp_path) -> None:
    db = tmp_path / "old.sqlite"
    row = history.run_row(load_report(folder), folder)
    v1 = {k: v for k, v in row.items() if k not in ("estimate_kind", "review_version")}
    with sqlite3.connect(db) as con:
        con.executescript(history.MIGRATIONS[1])
        con.execute(f"INSERT INTO runs ({', '.join(v1)}) VALUES ({', '.join('?' * len(v1))})",
                    list(v1.values()))  # fmt: skip
        con.execute("PRAGMA user_version = 1")
    runs = history.list_runs(db)
    assert [r["run_id"] for r in runs] == [row["run_id"]] and runs[0]["estimate_kind"] == "raw"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA
        assert con.execute("SELECT count(*) FROM signatures").fetchone()[0] == 0


def test_a_newer_or_broken_database_is_one_line(tmp_path, capsys) -> None:
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as con:
        con.execute(f"PRAGMA user_version = {history.SCHEMA + 1}")
    assert main(["history", "--history", str(newer)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"wbc-edge: {newer}: was written by a newer wbc-edge (schema {history.SCHEMA + 1}; "
        f"this one knows {history.SCHEMA})"
    )
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert main(["history", "--history", str(junk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a usable history database" in err[0]


def test_the_default_database_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("WBC_HISTORY", str(tmp_path / "x.sqlite"))
    assert history.history_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("WBC_HISTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert history.history_path() == tmp_path / "wbc-edge" / "history.sqlite"


# ---------------------------------------------------------------------------- FHIR R4


def fhir(folder: Path) -> dict:
    assert main(["export", str(folder), "--format", "fhir"]) == 0
    return json.loads((folder / "export" / "diagnostic-report.fhir.json").read_text())


def validate_r4(bundle: dict):
    """fhirclient's models are generated from FHIR 4.0.1; strict mode raises on a missing
    required element, a wrong type or an unknown one."""
    models = pytest.importorskip("fhirclient.models.bundle")
    return models.Bundle(bundle, strict=True)


def test_unsigned_fhir_is_a_valid_preliminary_r4_report(folder) -> None:
    bundle = validate_r4(fhir(folder))
    report = bundle.entry[0].resource
    observations = [e.resource for e in bundle.entry if e.resource.resource_type == "Observation"]
    specimen = next(e.resource for e in bundle.entry if e.resource.resource_type == "Specimen")
    data = load_report(folder)
    assert report.resource_type == "DiagnosticReport" and report.status == "preliminary"
    assert report.code.coding[0].code == "69738-3" and specimen.accessionIdentifier.value == "S-1"
    assert report.performer[0].display == "A. Tech" and report.resultsInterpreter is None
    assert len(observations) == len(data["meta"]["classes"]) == len(report.result)
    for obs, row in zip(observations, data["count"]["rows"], strict=True):
        assert obs.status == "preliminary"
        assert obs.code.coding[0].system == "http://loinc.org"
        assert obs.code.coding[0].code == loinc_for(row["class"])[0]
        assert obs.valueQuantity.value == pytest.approx(row["percent"])
        assert (obs.valueQuantity.code, obs.valueQuantity.system) == (
            "%", "http://unitsofmeasure.org")  # fmt: skip
        ci = obs.extension[0].valueRange
        assert (ci.low.value, ci.high.value) == pytest.approx((row["ci95_low"], row["ci95_high"]))
        assert obs.method.text.startswith("pre-classified by model custom-cnn")
        assert "not yet verified" in obs.method.text and "model's differential" in obs.method.text
    refs = {e.fullUrl for e in bundle.entry}
    assert all(r.reference in refs for r in report.result)


def test_signed_fhir_is_final_and_carries_the_reviewed_count(folder) -> None:
    review = signed(folder)
    bundle = validate_r4(fhir(folder))
    report = bundle.entry[0].resource
    assert report.status == "final" and report.resultsInterpreter[0].display == "B. Reviewer"
    reviewed = {r["class"]: r for r in review["count"]["rows"]}
    for e in bundle.entry[2:]:
        obs = e.resource
        assert obs.status == "final"
        assert obs.valueQuantity.value == pytest.approx(
            reviewed[obs.code.text.split("/")[0]]["percent"]
        )
        assert "verified by B. Reviewer" in obs.method.text and "reviewed count" in obs.method.text
        assert "the model's estimate was" in obs.note[0].text


def test_the_r4_validator_catches_what_it_should(folder) -> None:
    bundle = fhir(folder)
    del bundle["entry"][0]["resource"]["status"]  # required in R4
    with pytest.raises(Exception, match="status"):
        validate_r4(bundle)


def test_a_review_changed_after_signing_is_not_exported(folder, capsys) -> None:
    signed(folder)
    review = json.loads((folder / "review.json").read_text())
    review["corrections"] = {}
    (folder / "review.json").write_text(json.dumps(review))
    assert main(["export", str(folder)]) == 2
    assert "no longer matches" in capsys.readouterr().err
    assert not (folder / "export").exists()


# ---------------------------------------------------------------------------- HL7 v2


def hl7_text(folder: Path) -> str:
    assert main(["export", str(folder), "--format", "hl7"]) == 0
    return (folder / "export" / "oru-r01.hl7").read_bytes().decode("utf-8")


def validate_v2(text: str):
    """hl7apy's strict validation: the ORU_R01 structure of v2.5.1, datatypes and lengths."""
    pytest.importorskip("hl7apy")
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate() is True
    return message


@pytest.mark.parametrize("sign", [False, True])
def test_hl7_oru_r01_validates_and_matches_the_fhir_rows(folder, sign) -> None:
    if sign:
        signed(folder)
    text = hl7_text(folder)
    message = validate_v2(text)
    assert (
        message.msh.msh_9.to_er7() == "ORU^R01^ORU_R01" and message.msh.msh_12.to_er7() == "2.5.1"
    )
    hl7 = pytest.importorskip("hl7")
    parsed = hl7.parse(text)
    status = "F" if sign else "P"
    assert str(parsed.segment("OBR")[25]) == status
    observations = validate_r4(fhir(folder)).entry[2:]
    obx = parsed.segments("OBX")
    assert len(obx) == len(observations)
    for seg, e in zip(obx, observations, strict=True):
        obs = e.resource
        assert str(seg[3][0][0]) == obs.code.coding[0].code and str(seg[3][0][2]) == "LN"
        assert float(str(seg[5])) == pytest.approx(obs.valueQuantity.value, abs=0.005)
        assert str(seg[6][0][0]) == "%" and str(seg[11]) == status
    assert str(parsed.segment("SPM")[2][0][0]) == "S-1"
    method = str(parsed.segment("NTE")[3])
    assert ("verified by B. Reviewer" in method) == sign


def test_hl7_delimiters_in_text_are_escaped() -> None:
    assert escape_hl7("a|b^c&d~e\\f\rg") == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f g"


def test_every_loinc_code_is_a_percent_of_leukocytes() -> None:
    assert loinc_for("neutrophils") == LOINC["NEUTROPHIL"] and loinc_for("GIANT") is None
    assert all(name.endswith("/100 leukocytes in Blood") for _, name in LOINC.values())


def test_the_v2_validator_catches_what_it_should(folder) -> None:
    text = hl7_text(folder)
    no_order = "\r".join(s for s in text.split("\r") if not s.startswith("OBR"))
    with pytest.raises(Exception):  # noqa: B017 (hl7apy raises its own validation errors)
        validate_v2(no_order)
