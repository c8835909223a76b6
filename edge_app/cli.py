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
import sys
from pathlib import Path

from wbc_edge.core import cli_support, limits
from wbc_edge.core.bundle import load_bundle
from wbc_edge.core.cli_support import Command
from wbc_edge.core.decode import MAX_PIXELS
from wbc_edge.core.safe_io import printable
from wbc_edge.core.vocab import PRECISION_ORDER, RUNTIMES
from wbc_edge.edge_app import session
from wbc_edge.edge_app.calibrate import DEFAULT_FRAMES
from wbc_edge.edge_app.classify import DEFAULT_THRESHOLD, MODES, classify_media
from wbc_edge.edge_app.exit_codes import HELP as EXIT_HELP
from wbc_edge.edge_app.exit_codes import VERIFY_FAILED, exit_code
from wbc_edge.edge_app.identity import Identity, name_argument, sample_argument
from wbc_edge.edge_app.jsonl import JsonlWriter
from wbc_edge.edge_app.light import CALIBRATION_FRAMES
from wbc_edge.edge_app.signals import stop_on_signals
from wbc_edge.edge_app.sources.forms import FORMS_HELP
from wbc_edge.edge_app.summary import FolderTruth, StageTimes

PROG = "wbc-edge"
CAMERA_HELP = f"camera: {FORMS_HELP} (see docs/edge.md)"
SOURCE_HELP = "image, folder (recursive), glob or video"
VERIFY_EXITS = (
    "exit codes: 0 every artifact run agrees with the float model at the bundle's parity "
    "threshold; 1 one does not, or none could run here; 2 user error (bad bundle)"
)


def main(argv: list[str] | None = None) -> int:
    return cli_support.main_of(PROG, build_parser(), argv)


def build_parser() -> argparse.ArgumentParser:
    return cli_support.build_parser(
        PROG, "Classify white blood cells on the device.", COMMANDS, EXIT_HELP
    )


# --- the arguments of each command


def classify_arguments(c: argparse.ArgumentParser) -> None:
    _model_options(c)
    c.add_argument("--source", required=True, help=SOURCE_HELP)
    c.add_argument(
        "--mode",
        choices=MODES,
        default="field",
        help="field: whole fields of view, white cells found first (default); "
        "cell: each image is one cell crop like the Kaggle images",
    )
    _scale_option(c, "")
    c.add_argument("--save", type=Path, help="write each frame with its cells drawn into DIR")
    _shared(c, "--report")


def review_arguments(v: argparse.ArgumentParser) -> None:
    v.add_argument("report_dir", type=Path, help="a folder written by --report")
    _serve_options(v, 8765, "address to serve on", "port")
    v.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    _shared(v, "--history")


def history_arguments(h: argparse.ArgumentParser) -> None:
    h.add_argument("--sample", type=sample_argument, help="only the runs of this sample id")
    _shared(h, "--history")


def export_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("report_dir", type=Path, help="a folder written by --report")
    e.add_argument(
        "--format", choices=("fhir", "hl7", "all"), default="all", help="(default %(default)s)"
    )
    e.add_argument("--out", type=Path, help="folder to write into (default REPORT_DIR/export)")


def run_arguments(r: argparse.ArgumentParser) -> None:
    _model_options(r)
    r.add_argument("--camera", required=True, help=CAMERA_HELP)
    r.add_argument("--display", action="store_true", help="show the annotated frames in a window")
    r.add_argument("--snapshots", type=Path, help="save an annotated frame whenever a cell appears")
    _scale_option(r, " of the classified frame")
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
    _serve_options(
        r,
        8080,
        "address of the live page (default %(default)s; another one lets the lab's tablet in, "
        "with the page's token)",
        "port of the live page",
    )
    r.add_argument(
        "--target",
        type=limits.int_in(1, 100_000),
        metavar="N",
        help="stop when N white cells are counted (a manual differential counts 100 or 200), "
        "with a progress line and a bell",
    )
    _shared(r, "--report")


def calibrate_arguments(k: argparse.ArgumentParser) -> None:
    _bundle_option(k)
    where = k.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", help=f"{SOURCE_HELP} of a smear")
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


def bench_arguments(b: argparse.ArgumentParser) -> None:
    _bundle_option(b)
    b.add_argument("--source", required=True, help=SOURCE_HELP)
    b.add_argument("--mode", choices=MODES, default="field", help="as for classify")
    b.add_argument("--scale", type=limits.float_in(*limits.SCALE_RANGE), help="as for classify")
    b.add_argument("--runtime", choices=("auto", *RUNTIMES), default="auto", help="only this one")
    b.add_argument("--precision", choices=PRECISION_ORDER, help="only this precision")
    _shared(b, "--threads")
    b.add_argument(
        "--passes",
        type=limits.int_in(1, 1000),
        default=5,
        help="passes over the frames (default 5)",
    )
    b.add_argument(
        "--frames", type=limits.int_in(*limits.FRAMES_RANGE), help="use at most this many frames"
    )


def verify_arguments(y: argparse.ArgumentParser) -> None:
    _bundle_option(y)
    y.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="KEY|FILE",
        help="only this artifact: FORMAT-PRECISION (tflite-int8) or its file; repeatable "
        "(default: every artifact not marked failed)",
    )
    _shared(y, "--threads")


def models_arguments(m: argparse.ArgumentParser) -> None:
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
            _shared(q, "--threads")
        if name == "use":
            q.add_argument("name", help="an installed model's name (wbc-edge models list)")
        q.add_argument(
            "--store",
            type=Path,
            help="the store folder (default: $WBC_MODELS, else ~/.local/share/wbc-edge/models)",
        )


# --- argument blocks several commands share


def _bundle_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help="bundle folder (holds bundle.json)")


def _scale_option(p: argparse.ArgumentParser, of_what: str) -> None:
    p.add_argument(
        "--scale",
        type=limits.float_in(*limits.SCALE_RANGE),
        help=f"camera pixels per training-image pixel{of_what} (default: measured from the red "
        "cells of the first frames, or the --profile's)",
    )


def _serve_options(p: argparse.ArgumentParser, port: int, host_help: str, port_help: str) -> None:
    if "%(default)" not in host_help:
        host_help += " (default %(default)s)"
    p.add_argument("--host", default="127.0.0.1", help=host_help)
    p.add_argument(
        "--port",
        type=limits.int_in(0, 65535),
        default=port,
        help=f"{port_help} (default %(default)s; 0: any)",
    )


# Options several commands take: flag -> (type, metavar, help).
SHARED_OPTIONS = {
    "--report": (
        Path,
        "DIR",
        "write a printable HTML report (count, 95%% intervals, every cell) and CSV to DIR",
    ),
    "--history": (
        Path,
        "DB",
        "the run history database (default: $WBC_HISTORY, else "
        "~/.local/share/wbc-edge/history.sqlite); a run is recorded when it writes --report",
    ),
    "--sample": (
        sample_argument,
        "ID",
        "the slide's sample or accession id (letters, digits, - . _ / : #), carried into "
        "the JSONL, CSVs, report, history and export",
    ),
    "--operator": (name_argument, "NAME", "who ran the slide (as --sample)"),
    "--threads": (
        limits.int_in(*limits.THREADS_RANGE),
        "N",
        "inference threads (default: the cores this process may use)",
    ),
}


def _shared(p: argparse.ArgumentParser, *flags: str) -> None:
    for flag in flags:
        kind, metavar, text = SHARED_OPTIONS[flag]
        p.add_argument(flag, type=kind, metavar=metavar, help=text)


def _model_options(p: argparse.ArgumentParser) -> None:
    _bundle_option(p)
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
    _shared(p, "--threads")
    p.add_argument("--stats", action="store_true", help="print per-stage p50/p95 and frames/s")
    _shared(p, "--sample", "--operator", "--history")


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


# --- what each command runs


def cmd_classify(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.progress import with_progress
    from wbc_edge.edge_app.run_outputs import ClassifyOutputs
    from wbc_edge.edge_app.sources.expand import expand_inputs
    from wbc_edge.edge_app.sources.files import iter_inputs, spread_sample

    bundle = load_bundle(session.model_dir(args))
    profile = session.load_profile(args)
    inputs = expand_inputs(args.source)  # a source naming nothing fails before the model loads
    frames = iter_inputs(with_progress(inputs, len(inputs), "classify"))
    with session.open_model_runtime(args, bundle) as rt:
        classifier = session.classifier(args, rt, args.mode, profile)
        classifier.prime(spread_sample(inputs, CALIBRATION_FRAMES))  # a folder: spread over it
        times = StageTimes() if args.stats else None
        truth = FolderTruth(bundle.classes) if args.mode == "cell" else None
        paths = [i.path for i in inputs]
        identity = Identity(args.sample, args.operator)
        outputs = ClassifyOutputs(
            classifier, rt, args.source, args.save, args.report, paths, identity
        )
        fields = identity.fields() | session.model_fields(bundle)
        with JsonlWriter(args.jsonl, paths, fields) as writer, stop_on_signals() as stop:
            count = classify_media(frames, classifier, writer, stop, times, truth, outputs)
        out = sys.stderr if writer.to_stdout else sys.stdout
        title = f"differential count ({bundle.name}, {rt.name} {rt.precision}, {args.mode} mode)"
        count.notes += classifier.run_notes()
        text = "\n".join([*outputs.finish(count), count.format(title)])
        if truth is not None and truth.cells:
            text += "\n" + truth.format()
        session.record(args)
        session.print_summary(out, text, times, stop, writer)
    return exit_code(count, writer.failed, stop.is_set())


def cmd_run(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.live import LiveOptions, LiveRun
    from wbc_edge.edge_app.live_outputs import live_page, live_report
    from wbc_edge.edge_app.sources import FileCamera, FrameStream, open_source
    from wbc_edge.edge_app.sources.files import expand_source

    bundle = load_bundle(session.model_dir(args))
    profile = session.load_profile(args)
    camera = open_source(args.camera, size=args.size, loop=args.loop)
    inputs = expand_source(camera.src) if isinstance(camera, FileCamera) else []
    with session.open_model_runtime(args, bundle) as rt:
        classifier = session.classifier(args, rt, "field", profile)
        fields = Identity(args.sample, args.operator).fields() | session.model_fields(bundle)
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
            report = live_report(args, live, rt, inputs)
            with live_page(args, live):
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
            session.record(args)
        session.print_summary(out, text, live.times if args.stats else None, stop, writer)
    return exit_code(count, writer.failed)  # a signal is how a live run normally ends


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

    path = history_path(args.history)
    print(format_runs(list_runs(path, args.sample), path))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.export import FORMATS, export_report

    formats = tuple(FORMATS) if args.format == "all" else (args.format,)
    result, paths = export_report(args.report_dir, args.out, formats)
    for path in paths:
        print(f"{result.status}: {printable(str(path))}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.calibrate import calibrate
    from wbc_edge.edge_app.calibrate_files import (
        calibration_frames,
        check_outputs,
        write_calibration,
    )

    bundle = load_bundle(session.model_dir(args))
    png = args.picture or args.out.with_suffix(".png")
    check_outputs(args.source, args.out, png)  # before a frame is read
    frames, name = calibration_frames(args.source, args.camera, args.size)
    cal = calibrate(frames, bundle.preprocessing, args.frames, name)
    write_calibration(cal, bundle.preprocessing, args.out, png)
    print(cal.format())
    print(f"wrote {printable(str(args.out))} and {printable(str(png))}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from wbc_edge.edge_app.bench import format_report, load_frames, run_bench

    bundle = load_bundle(session.model_dir(args))
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
    from wbc_edge.edge_app.verify import choose_artifacts, verify_artifacts

    bundle = load_bundle(session.model_dir(args))
    artifacts = choose_artifacts(bundle, args.artifact)
    check = verify_artifacts(bundle, artifacts, args.threads, named=bool(args.artifact))
    print(check.table)
    return 0 if check.passed else VERIFY_FAILED


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


COMMANDS = (
    Command(
        "classify", "classify image files, folders, globs or videos",
        classify_arguments, cmd_classify, epilog=EXIT_HELP,
    ),
    Command(
        "review", "reclassify the cells of a --report folder in a browser",
        review_arguments, cmd_review,
    ),
    Command(
        "history", "list the recorded runs (of one sample)", history_arguments, cmd_history
    ),
    Command(
        "export", "write a report's result as FHIR R4 and HL7 v2 ORU^R01",
        export_arguments, cmd_export,
    ),
    Command("run", "the live loop on a camera", run_arguments, cmd_run, epilog=EXIT_HELP),
    Command(
        "calibrate",
        "measure a camera on its microscope (scale, lamp colour, focus) into a profile",
        calibrate_arguments, cmd_calibrate,
    ),
    Command("bench", "time every stage and artifact on this machine", bench_arguments, cmd_bench),
    Command(
        "verify",
        "parity self-test: the bundle's held-out sample through this device's runtimes",
        verify_arguments, cmd_verify, epilog=VERIFY_EXITS,
    ),
    Command(
        "models", "the device's installed models: install (verified), list, use, rollback",
        models_arguments, cmd_models,
        description="Install a bundle as the device's model after its parity self-test passes "
        "here (the previous one kept for rollback); classify and run take --model @current.",
    ),
)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
