"""`wbc-edge`: classify white blood cells on the device (files or a live camera).

    wbc-edge classify --model BUNDLE_DIR --source SRC [--mode cell|field] [--runtime R]
                      [--precision P] [--jsonl OUT] [--threshold P] [--scale S] [--threads N]
                      [--stats] [--save DIR] [--report DIR] [--sample ID] [--operator NAME]
                      [--history DB] [--verbose]
    wbc-edge review REPORT_DIR [--host H] [--port N] [--history DB]
    wbc-edge history [--sample ID] [--history DB]
    wbc-edge export REPORT_DIR [--format fhir|hl7|all] [--out DIR]
    wbc-edge run --model BUNDLE_DIR --camera CAMERA (0, /dev/video0, csi://0, rtsp://..., file:PATH)
                 [--display] [--jsonl OUT] [--snapshots DIR] [--report DIR] [--stats] [...]
    wbc-edge calibrate --model BUNDLE_DIR (--source SRC | --camera CAM) --out PROFILE.json
    wbc-edge bench --model BUNDLE_DIR --source SRC [--threads N] [--passes K] [...]
    wbc-edge verify --model BUNDLE_DIR [--artifact KEY|FILE ...] [--threads N]
    wbc-edge models install BUNDLE_DIR | list | use NAME | rollback [--store DIR]

--model @current (or @NAME) names a model installed with `wbc-edge models install`.

See docs/edge.md. Never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from wbc_edge.core import limits
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.cli_support import add_version, run_cli
from wbc_edge.core.decode import MAX_PIXELS
from wbc_edge.core.errors import BundleError, WbcError
from wbc_edge.core.quiet import native_stderr
from wbc_edge.core.runtime import open_runtime
from wbc_edge.core.safe_io import printable, write_image
from wbc_edge.core.vocab import PRECISION_ORDER, RUNTIMES
from wbc_edge.edge_app.calibrate import DEFAULT_FRAMES
from wbc_edge.edge_app.classify import (
    DEFAULT_THRESHOLD,
    MODES,
    Classifier,
    classify_media,
)
from wbc_edge.edge_app.exit_codes import HELP as EXIT_HELP
from wbc_edge.edge_app.exit_codes import VERIFY_FAILED, exit_code
from wbc_edge.edge_app.identity import Identity, name_argument, sample_argument
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.light import CALIBRATION_FRAMES
from wbc_edge.edge_app.model_quality import warn_if_below_floor
from wbc_edge.edge_app.sources.forms import FORMS_HELP
from wbc_edge.edge_app.summary import FolderTruth, StageTimes

PROG = "wbc-edge"
CAMERA_HELP = f"camera: {FORMS_HELP} (see docs/edge.md)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(PROG, lambda: args.func(args), verbose=getattr(args, "verbose", False))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG, description="Classify white blood cells on the device.", epilog=EXIT_HELP
    )
    sub = ap.add_subparsers(dest="command", required=True)

    c = sub.add_parser(
        "classify", help="classify image files, folders, globs or videos", epilog=EXIT_HELP
    )
    _model_options(c)
    c.add_argument("--source", required=True, help="image, folder (recursive), glob or video")
    c.add_argument(
        "--mode",
        choices=MODES,
        default="field",
        help="field: whole fields of view, white cells found first (default); "
        "cell: each image is one cell crop like the Kaggle images",
    )
    c.add_argument(
        "--scale",
        type=limits.float_in(*limits.SCALE_RANGE),
        help="camera pixels per training-image pixel (default: measured from the red cells "
        "of the first frames, or the --profile's)",
    )
    c.add_argument("--save", type=Path, help="write each frame with its cells drawn into DIR")
    _report_option(c)
    c.set_defaults(func=cmd_classify)

    v = sub.add_parser("review", help="reclassify the cells of a --report folder in a browser")
    v.add_argument("report_dir", type=Path, help="a folder written by --report")
    v.add_argument("--host", default="127.0.0.1", help="address to serve on (default %(default)s)")
    v.add_argument(
        "--port",
        type=limits.int_in(0, 65535),
        default=8765,
        help="port (default %(default)s; 0: any)",
    )
    v.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    _history_option(v)
    v.add_argument("--verbose", action="store_true", help="show every log line")
    v.set_defaults(func=cmd_review)

    h = sub.add_parser("history", help="list the recorded runs (of one sample)")
    h.add_argument("--sample", type=sample_argument, help="only the runs of this sample id")
    _history_option(h)
    h.set_defaults(func=cmd_history)

    e = sub.add_parser("export", help="write a report's result as FHIR R4 and HL7 v2 ORU^R01")
    e.add_argument("report_dir", type=Path, help="a folder written by --report")
    e.add_argument(
        "--format", choices=("fhir", "hl7", "all"), default="all", help="(default %(default)s)"
    )
    e.add_argument("--out", type=Path, help="folder to write into (default REPORT_DIR/export)")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("run", help="the live loop on a camera", epilog=EXIT_HELP)
    _model_options(r)
    r.add_argument("--camera", required=True, help=CAMERA_HELP)
    r.add_argument("--display", action="store_true", help="show the annotated frames in a window")
    r.add_argument("--snapshots", type=Path, help="save an annotated frame whenever a cell appears")
    r.add_argument(
        "--scale",
        type=limits.float_in(*limits.SCALE_RANGE),
        help="camera pixels per training-image pixel of the classified frame (default: "
        "measured from the red cells of the first frames, or the --profile's)",
    )
    r.add_argument("--size", type=_size, help="frame to classify, WxH (default 640x480)")
    r.add_argument("--loop", action="store_true", help="file: replay starts over at its end")
    r.add_argument(
        "--no-track",
        action="store_true",
        help="count every detection in every frame instead of each tracked cell once",
    )
    r.add_argument(
        "--max-frames", type=limits.int_in(*limits.FRAMES_RANGE), help="stop after this many frames"
    )
    r.add_argument(
        "--serve",
        action="store_true",
        help="serve a live page (view, count, progress, advice) on --host:--port",
    )
    r.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the live page (default %(default)s; another one lets the lab's "
        "tablet in, with the page's token)",
    )
    r.add_argument(
        "--port",
        type=limits.int_in(0, 65535),
        default=8080,
        help="port of the live page (default %(default)s; 0: any)",
    )
    r.add_argument(
        "--target",
        type=limits.int_in(1, 100_000),
        metavar="N",
        help="stop when N white cells are counted (a manual differential counts 100 or 200), "
        "with a progress line and a bell",
    )
    _report_option(r)
    r.set_defaults(func=cmd_run)

    k = sub.add_parser(
        "calibrate",
        help="measure a camera on its microscope (scale, lamp colour, focus) into a profile",
    )
    k.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")
    where = k.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", help="image, folder (recursive), glob or video of a smear")
    where.add_argument("--camera", help=CAMERA_HELP)
    k.add_argument("--out", required=True, type=Path, help="camera profile to write (JSON)")
    k.add_argument(
        "--picture", type=Path, help="picture of what was measured (default: beside --out, .png)"
    )
    k.add_argument(
        "--frames",
        type=limits.int_in(1, 1000),
        default=DEFAULT_FRAMES,
        help="frames to measure (default %(default)s)",
    )
    k.add_argument("--size", type=_size, help="camera frame WxH (default 640x480)")
    k.set_defaults(func=cmd_calibrate)
    b = sub.add_parser("bench", help="time every stage and artifact on this machine")
    b.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")
    b.add_argument("--source", required=True, help="image, folder (recursive), glob or video")
    b.add_argument("--mode", choices=MODES, default="field", help="as for classify")
    b.add_argument("--scale", type=limits.float_in(*limits.SCALE_RANGE), help="as for classify")
    b.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto", help="only this one")
    b.add_argument("--precision", choices=PRECISION_ORDER, help="only this precision")
    _threads_option(b)
    b.add_argument(
        "--passes",
        type=limits.int_in(1, 1000),
        default=5,
        help="passes over the frames (default 5)",
    )
    b.add_argument(
        "--frames", type=limits.int_in(*limits.FRAMES_RANGE), help="use at most this many frames"
    )
    b.set_defaults(func=cmd_bench)
    y = sub.add_parser(
        "verify",
        help="parity self-test: the bundle's held-out sample through this device's runtimes",
        epilog="exit codes: 0 every artifact run agrees with the float model at the bundle's "
        "parity threshold; 1 one does not, or none could run here; 2 user error (bad bundle)",
    )
    y.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")
    y.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="KEY|FILE",
        help="only this artifact: FORMAT-PRECISION (tflite-int8) or its file; repeatable "
        "(default: every artifact not marked failed)",
    )
    _threads_option(y)
    y.add_argument("--verbose", action="store_true", help="show runtime log lines")
    y.set_defaults(func=cmd_verify)
    _models_parser(sub)
    add_version(ap, *sub.choices.values())
    return ap


def _models_parser(sub) -> None:
    m = sub.add_parser(
        "models",
        help="the device's installed models: install (verified), list, use, rollback",
        description="Install a bundle as the device's model after its parity self-test passes "
        "here (the previous one kept for rollback); classify and run take --model @current.",
    )
    msub = m.add_subparsers(dest="models_command", required=True)
    for name, text in (
        ("install", "verify a bundle on this device and make it the model in use"),
        ("list", "the installed models, the one in use marked *"),
        ("use", "make an installed model the one in use"),
        ("rollback", "go back to the model in use before the current one"),
    ):
        q = msub.add_parser(name, help=text)
        if name == "install":
            q.add_argument("bundle", type=Path, help="bundle folder (holds bundle.json)")
            _threads_option(q)
        if name == "use":
            q.add_argument("name", help="an installed model's name (wbc-edge models list)")
        q.add_argument(
            "--store",
            type=Path,
            help="the store folder (default: $WBC_MODELS, else ~/.local/share/wbc-edge/models)",
        )
        q.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app import installed_models as im

    store = im.store_path(args.store)
    if args.models_command == "install":
        name, check = im.install(args.bundle, store, args.threads)
        print(check.table)
        print(f"installed {name} as the model in use ({printable(str(store / name))})")
    elif args.models_command == "use":
        print(f"in use: {im.use(args.name, store)}")
    elif args.models_command == "rollback":
        print(f"rolled back; in use: {im.rollback(store)}")
    else:
        print(im.format_list(im.list_models(store), store))
    return 0


def _report_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write a printable HTML report (count, 95%% intervals, every cell) and CSV to DIR",
    )


def _history_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--history",
        type=Path,
        metavar="DB",
        help="the run history database (default: $WBC_HISTORY, else "
        "~/.local/share/wbc-edge/history.sqlite); a run is recorded when it writes --report",
    )


def _identity_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sample",
        type=sample_argument,
        metavar="ID",
        help="the slide's sample or accession id (letters, digits, - . _ / : #), carried into "
        "the JSONL, CSVs, report, history and export",
    )
    p.add_argument(
        "--operator", type=name_argument, metavar="NAME", help="who ran the slide (as --sample)"
    )


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=limits.int_in(*limits.THREADS_RANGE),
        help="inference threads (default: the cores this process may use)",
    )


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")
    p.add_argument(
        "--min-nucleus-area",
        type=limits.int_in(*limits.AREA_RANGE),
        metavar="PX",
        help="smallest nucleus that counts as a white cell, in training-image pixels (default: "
        "the bundle's; 600 halves BCCD false detections, see docs/edge.md)",
    )
    p.add_argument(
        "--runtime",
        choices=("auto", *RUNTIMES),
        default="auto",
        help="backend (default auto: the best artifact this machine can run; see docs/edge.md)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISION_ORDER,
        help="artifact precision (default: the best listed, int8 > fp16 > dynamic > fp32)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        help="camera profile from `wbc-edge calibrate`: its scale, lamp and focus baseline",
    )
    p.add_argument("--jsonl", help="write one JSON record per cell to this file (- for stdout)")
    p.add_argument(
        "--threshold",
        type=limits.float_in(*limits.THRESHOLD_RANGE),
        default=DEFAULT_THRESHOLD,
        help="cells below this confidence are flagged uncertain (default %(default)g)",
    )
    _threads_option(p)
    p.add_argument("--stats", action="store_true", help="print per-stage p50/p95 and frames/s")
    _identity_options(p)
    _history_option(p)
    p.add_argument("--verbose", action="store_true", help="show runtime and TensorFlow log lines")


def cmd_classify(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.progress import with_progress
    from wbc_edge.edge_app.run_outputs import ClassifyOutputs
    from wbc_edge.edge_app.sources.expand import expand_inputs
    from wbc_edge.edge_app.sources.files import iter_inputs, spread_sample

    bundle = load_bundle(_model_dir(args))
    profile = _profile(args)
    inputs = expand_inputs(args.source)  # a source naming nothing fails before the model loads
    frames = iter_inputs(with_progress(inputs, len(inputs), "classify"))
    with _runtime(args, bundle) as rt:
        classifier = _classifier(args, rt, args.mode, profile)
        classifier.prime(spread_sample(inputs, CALIBRATION_FRAMES))  # a folder: spread over it
        times = StageTimes() if args.stats else None
        truth = FolderTruth(bundle.classes) if args.mode == "cell" else None
        paths = [i.path for i in inputs]
        identity = Identity(args.sample, args.operator)
        outputs = ClassifyOutputs(
            classifier, rt, args.source, args.save, args.report, paths, identity
        )
        with (
            JsonlWriter(args.jsonl, paths, identity.fields() | model_fields(bundle)) as writer,
            stop_on_signals() as stop,
        ):
            count = classify_media(frames, classifier, writer, stop, times, truth, outputs)
        out = sys.stderr if writer.to_stdout else sys.stdout
        title = f"differential count ({bundle.name}, {rt.name} {rt.precision}, {args.mode} mode)"
        count.notes += classifier.run_notes()
        text = "\n".join([*outputs.finish(count), count.format(title)])
        if truth is not None and truth.cells:
            text += "\n" + truth.format()
        _record(args)
        _report(out, text, times, stop, writer)
    return exit_code(count, writer.failed, stop.is_set())


def cmd_run(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.live import LiveOptions, LiveRun
    from wbc_edge.edge_app.sources import FileCamera, FrameStream, open_source
    from wbc_edge.edge_app.sources.files import expand_source

    bundle = load_bundle(_model_dir(args))
    profile = _profile(args)
    camera = open_source(args.camera, size=args.size, loop=args.loop)
    inputs = expand_source(camera.src) if isinstance(camera, FileCamera) else []
    with _runtime(args, bundle) as rt:
        classifier = _classifier(args, rt, "field", profile)
        fields = Identity(args.sample, args.operator).fields() | model_fields(bundle)
        with JsonlWriter(args.jsonl, inputs, fields) as writer, stop_on_signals() as stop:
            stream = FrameStream(camera, stop)
            options = LiveOptions(
                source_name=args.camera,
                display=args.display,
                snapshots=args.snapshots,
                track=not args.no_track,
                max_frames=args.max_frames,
                target=args.target,
            )
            live = LiveRun(classifier, writer, options, camera, inputs)
            report = _live_report(args, live, rt, inputs)
            with _live_page(args, live):
                count = live.run(stream, stop)
            if stream.replay_error:
                count.add_error(args.camera, stream.replay_error)
        out = sys.stderr if writer.to_stdout else sys.stdout
        how = "each tracked cell once" if live.tracking else "every detection"
        title = f"differential count ({bundle.name}, {rt.name} {rt.precision}, {how})"
        if stream.failures:
            title += f"; the camera failed and was reopened {stream.failures} times"
        count.notes += classifier.run_notes()
        text = count.format(title)
        if report is not None:
            page = report.write(count)
            csv = page.parent / "count.csv"
            text = f"report: {printable(str(page))} (count: {printable(str(csv))})\n" + text
            _record(args)
        _report(out, text, live.times if args.stats else None, stop, writer)
    return exit_code(count, writer.failed)  # a signal is how a live run normally ends


@contextlib.contextmanager
def _live_page(args: argparse.Namespace, live) -> Iterator[None]:
    """The live page of `run --serve`, served while the run lasts; nothing without it."""
    if not args.serve:
        yield
        return
    from wbc_edge.edge_app.live_page import LivePage, LiveState

    try:
        page = LivePage(LiveState(), args.host, args.port).start()
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        raise WbcError(f"cannot serve the live page on {where} ({exc.strerror})") from None
    live.page = page.state
    print(f"{PROG}: live page: {page.url}", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        page.close()


def _live_report(args: argparse.Namespace, live, rt, inputs: list[Path]):
    """The RunReport of `run --report DIR`, fed by the live loop; None without --report."""
    if args.report is None:
        return None
    from wbc_edge.edge_app.report import LIVE_GALLERY, LiveReportCells, RunReport, run_meta

    report = RunReport(
        args.report,
        run_meta(
            live.classifier.bundle,
            rt,
            live.classifier,
            args.camera,
            Identity(args.sample, args.operator),
        ),
        live.classifier.classes,
        inputs,
        max_cells=LIVE_GALLERY,
    )
    live.classifier.keep_crops = True
    live.report_cells = LiveReportCells(report)
    return report


def cmd_review(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.history import history_path
    from wbc_edge.edge_app.review import serve_review

    serve_review(
        args.report_dir,
        args.host,
        args.port,
        open_browser=not args.no_browser,
        history=history_path(args.history),
    )
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.history import format_runs, history_path, list_runs

    print(format_runs(list_runs(history_path(args.history), args.sample)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.export import FORMATS, export_report

    formats = tuple(FORMATS) if args.format == "all" else (args.format,)
    result, paths = export_report(args.report_dir, args.out, formats)
    for path in paths:
        print(f"{result.status}: {printable(str(path))}")
    return 0


def _record(args: argparse.Namespace) -> None:
    """Record a run that wrote --report in the history database."""
    if args.report is None:
        return
    from wbc_edge.edge_app.history import history_path
    from wbc_edge.edge_app.review import record_quietly

    record_quietly(history_path(args.history), args.report)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.calibrate import calibrate, picture
    from wbc_edge.edge_app.profile import save_profile

    bundle = load_bundle(_model_dir(args))
    png = args.picture or args.out.with_suffix(".png")
    _check_calibrate_outputs(args, png)  # before a frame is read
    frames, name = _calibration_frames(args)
    cal = calibrate(frames, bundle.preprocessing, args.frames, name)
    save_profile(cal.profile, args.out)
    write_image(png, picture(cal, bundle.preprocessing))
    print(cal.format())
    print(f"wrote {printable(str(args.out))} and {printable(str(png))}")
    return 0


def _check_calibrate_outputs(args: argparse.Namespace, png: Path) -> None:
    """Refuse a --out or --picture that is one of the --source files, one and the same file,
    or (for --out) an existing file that is not a camera profile."""
    from wbc_edge.edge_app.output_folder import file_ids
    from wbc_edge.edge_app.profile import is_profile_file
    from wbc_edge.edge_app.sources.files import expand_source

    inputs = file_ids(expand_source(args.source)) if args.source is not None else set()
    for path, what in ((args.out, "the profile"), (png, "the picture")):
        if file_ids([path]) & inputs:
            raise WbcError(f"is one of the inputs: refusing to overwrite it with {what}", path)
    if args.out.resolve() == png.resolve():
        raise WbcError("--out and --picture name the same file; give another --picture", png)
    if args.out.exists() and not is_profile_file(args.out):
        raise WbcError(
            "exists and is not a camera profile: refusing to overwrite it (choose another --out)",
            args.out,
        )


def _calibration_frames(args: argparse.Namespace):
    """(name, rgb or None, error or None) from --source files or a --camera."""
    if args.source is not None:
        from wbc_edge.edge_app.sources.files import iter_media

        media = iter_media(args.source)
        return (
            (f"{m.source}:{m.frame}" if m.frame else m.source, m.rgb, m.error) for m in media
        ), args.source
    from wbc_edge.edge_app.sources import FrameStream, open_source

    stream = FrameStream(open_source(args.camera, size=args.size))
    return ((f"frame {i}", rgb, None) for i, (_, rgb) in enumerate(stream)), args.camera


def _model_dir(args: argparse.Namespace) -> Path:
    """--model as a bundle folder (`@current`/`@NAME`: an installed model)."""
    from wbc_edge.edge_app.installed_models import resolve_model

    args.model = resolve_model(args.model)
    return args.model


def model_fields(bundle) -> dict[str, str]:
    """What every JSONL record says about the model that counted: its name and the sha256 of
    its bundle.json (the report's meta says the same)."""
    from wbc_edge.edge_app.report import bundle_hash

    return {"model": bundle.name, "model_sha256": bundle_hash(bundle.root)}


def _profile(args: argparse.Namespace):
    from wbc_edge.edge_app.profile import load_profile

    return load_profile(args.profile) if args.profile is not None else None


def _classifier(args: argparse.Namespace, rt, mode: str, profile) -> Classifier:
    return Classifier(
        rt,
        mode,
        args.scale,
        args.threshold,
        args.min_nucleus_area,
        profile,
        str(args.profile) if args.profile is not None else None,
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.bench import format_report, load_frames, run_bench

    bundle = load_bundle(_model_dir(args))
    frames = load_frames(args.source, args.frames)
    results = run_bench(
        bundle,
        frames,
        args.mode,
        args.scale,
        args.threads,
        args.passes,
        args.runtime,
        args.precision,
    )
    print(format_report(bundle, args.source, frames, results, args.mode))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from wbc_edge.core import selftest

    bundle = load_bundle(_model_dir(args))
    sample = selftest.load_sample(bundle)
    verdicts = []
    for art in _verify_artifacts(bundle, args.artifact):
        try:
            verdicts.append(selftest.verify_artifact(bundle, art, sample, args.threads))
        except BundleError as exc:  # its runtime is here and cannot load it: a failure
            why = exc.message.removeprefix(f"{art.file}: ")
            verdicts.append(selftest.load_failed(bundle, art, printable(why)[:120]))
        except WbcError as exc:  # no runtime for it here: a row that says so
            if args.artifact:
                raise
            verdicts.append(selftest.not_run(bundle, art, exc.message.split(" (")[0]))
    print(selftest.format_table(bundle, verdicts))
    ran = [v for v in verdicts if v.passed is not None]
    return 0 if ran and all(v.passed for v in ran) else VERIFY_FAILED


def _verify_artifacts(bundle, wanted: list[str]) -> list:
    """The artifacts `verify` runs: those named (key or file), else every runnable one."""
    from wbc_edge.core.vocab import FORMAT_RUNTIMES

    runnable = [a for a in bundle.artifacts if a.format in FORMAT_RUNTIMES]
    names = [w.strip() for text in wanted for w in text.split(",") if w.strip()]
    if not names:
        return [a for a in runnable if a.status != "failed"] or _none_to_verify(bundle)
    chosen = []
    for name in names:
        match = [a for a in runnable if name in (a.file, a.key)]
        if not match:
            have = ", ".join(f"{a.key} ({a.file})" for a in runnable) or "none"
            raise WbcError(f"no runnable artifact {name!r} (artifacts: {have})", bundle.path)
        chosen += [a for a in match if a not in chosen]
    return chosen


def _none_to_verify(bundle) -> list:
    raise WbcError("has no artifact a device can run; run wbc-convert", bundle.path)


def _runtime(args: argparse.Namespace, bundle):
    warn_if_below_floor(bundle)
    with native_stderr():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" and the like
        rt = open_runtime(bundle, None, args.runtime, args.precision, args.threads)
    if rt.output_kind_note:  # said here: native_stderr hid the runtime's own log line
        logging.getLogger(PROG).warning("%s", rt.output_kind_note)
    return rt


def _report(
    out, text: str, times: StageTimes | None, stop: threading.Event, writer: JsonlWriter
) -> None:
    if stop.is_set():
        print(f"{PROG}: stopped by a signal; the count covers everything read so far", file=out)
    print(text, file=out)
    if times is not None:
        print(times.format(), file=out)
    out.flush()
    if writer.failure:  # after the summary of what was done, so a script sees both
        print(f"{PROG}: {writer.failure}", file=sys.stderr)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM (a second one interrupts at once); handlers restored."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WxH, e.g. 640x480") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"{text} is too small")
    if w * h > MAX_PIXELS or max(w, h) > 16384:
        raise argparse.ArgumentTypeError(f"{text} is too large for this device")
    return w, h


if __name__ == "__main__":
    raise SystemExit(main())
