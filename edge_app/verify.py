"""The parity self-test on this device (`wbc-edge verify`, `wbc-edge models install`): which
artifacts it runs and the verdict over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wbc_edge.core import selftest
from wbc_edge.core.bundle import Artifact, Bundle
from wbc_edge.core.errors import BundleError, WbcError
from wbc_edge.core.safe_io import printable
from wbc_edge.core.vocab import FORMAT_RUNTIMES


@dataclass
class Verification:
    """The verdict table and whether every artifact that ran agrees (and at least one ran)."""

    table: str
    passed: bool


def choose_artifacts(bundle: Bundle, wanted: Sequence[str] = ()) -> list[Artifact]:
    """The artifacts named (key or file, comma-separated or repeated), else every runnable one
    not marked failed; WbcError for a name the bundle lacks or a bundle with none to run."""
    runnable = [a for a in bundle.artifacts if a.format in FORMAT_RUNTIMES]
    names = [w.strip() for text in wanted for w in text.split(",") if w.strip()]
    if not names:
        chosen = [a for a in runnable if a.status != "failed"]
        if not chosen:
            raise WbcError("has no artifact a device can run; run wbc-convert", bundle.path)
        return chosen
    chosen = []
    for name in names:
        match = [a for a in runnable if name in (a.file, a.key)]
        if not match:
            have = ", ".join(f"{a.key} ({a.file})" for a in runnable) or "none"
            raise WbcError(f"no runnable artifact {name!r} (artifacts: {have})", bundle.path)
        chosen += [a for a in match if a not in chosen]
    return chosen


def verify_artifacts(
    bundle: Bundle, artifacts: list[Artifact], threads: int | None, named: bool = False
) -> Verification:
    """Run the self-test sample through each artifact here. One this device's runtime cannot
    load is a failure; one no runtime here can run is a row that says so (an error when the
    artifact was `named` by the user)."""
    sample = selftest.load_sample(bundle)
    verdicts = []
    for art in artifacts:
        try:
            verdicts.append(selftest.verify_artifact(bundle, art, sample, threads))
        except BundleError as exc:  # its runtime is here and cannot load it: a failure
            why = exc.message.removeprefix(f"{art.file}: ")
            verdicts.append(selftest.load_failed(bundle, art, printable(why)[:120]))
        except WbcError as exc:  # no runtime for it here: a row that says so
            if named:
                raise
            verdicts.append(selftest.not_run(bundle, art, exc.message.split(" (")[0]))
    ran = [v for v in verdicts if v.passed is not None]
    return Verification(
        selftest.format_table(bundle, verdicts), bool(ran) and all(v.passed for v in ran)
    )


def verify_bundle(bundle: Bundle, threads: int | None = None) -> Verification:
    """The self-test of every runnable artifact not marked failed."""
    return verify_artifacts(bundle, choose_artifacts(bundle), threads)
