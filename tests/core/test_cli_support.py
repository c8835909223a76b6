"""One CLI pattern for wbc-train, wbc-convert and wbc-edge (core.cli_support): `--verbose` on
every command and subcommand, a default subcommand, one-line errors."""

from __future__ import annotations

import argparse

import pytest

from wbc_edge.core.cli_support import Command, build_parser, main_of


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from wbc_edge.convert.cli import parser as convert_parser
    from wbc_edge.edge_app.cli import build_parser as edge_parser
    from wbc_edge.train.cli import parser as train_parser

    return {"wbc-train": train_parser(), "wbc-convert": convert_parser(), "wbc-edge": edge_parser()}


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_and_subcommand_takes_verbose_the_same_way() -> None:
    for prog, p in _parsers().items():
        parsers = {prog: p} | {f"{prog} {n}": s for n, s in _subparsers(p).items()}
        for name, q in parsers.items():
            flags = {o for a in q._actions for o in a.option_strings}
            assert {"--verbose", "--version"} <= flags, name
            verbose = next(a for a in q._actions if "--verbose" in a.option_strings)
            assert verbose.nargs == 0, f"{name}: --verbose takes no value"


@pytest.mark.parametrize(
    "argv",
    [
        ["--verbose", "classify", "--model", "m", "--source", "s"],
        ["classify", "--model", "m", "--source", "s", "--verbose"],
    ],
)
def test_verbose_before_or_after_the_subcommand(argv: list[str]) -> None:
    from wbc_edge.edge_app.cli import build_parser

    assert build_parser().parse_args(argv).verbose is True
    quiet = [a for a in argv if a != "--verbose"]
    assert build_parser().parse_args(quiet).verbose is False


def test_wbc_train_without_a_command_trains() -> None:
    from wbc_edge.train import cli

    bare = ["data", "--out", "m", "--epochs", "2", "--progress", "0"]
    seen = []

    def spy(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    p = build_parser("wbc-train", "test", [Command("train", "t", cli.train_arguments, spy)])
    assert main_of("wbc-train", p, bare, default="train") == 0
    assert main_of("wbc-train", p, ["train", *bare], default="train") == 0
    a, b = seen
    assert vars(a) | {"argv": None} == vars(b) | {"argv": None}
    assert a.argv == ["train", *bare]  # what fold jobs re-run
    assert (a.epochs, a.progress, a.verbose) == (2, 0, False)


def test_tf_logs_is_the_old_name_of_verbose_and_progress_is_keras_output() -> None:
    from wbc_edge.train import cli

    args = cli.parser().parse_args(["train", "data", "--out", "m", "--tf-logs"])
    assert args.verbose is True and args.progress is None
    with pytest.raises(SystemExit):  # --verbose takes no level: that is --progress now
        cli.parser().parse_args(["train", "data", "--out", "m", "--verbose", "2"])


def test_a_user_error_in_any_subcommand_is_one_line(capsys, tmp_path) -> None:
    from wbc_edge.train.cli import main

    assert main(["adapt", str(tmp_path), str(tmp_path), "--out", "c", "--lab-share", "1"]) == 2
    assert capsys.readouterr().err.strip() == "wbc-train: --lab-share must lie between 0 and 1"
    assert main([]) == 2
    assert capsys.readouterr().err.strip() == (
        "wbc-train: DATA_ROOT and --out are required (or --list-models)"
    )


def test_help_and_version_of_the_command_itself_are_not_the_default_commands(capsys) -> None:
    from wbc_edge.train.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: wbc-train [-h] [--version] [--verbose] COMMAND")
    assert all(name in out for name in ("train", "groups", "adapt", "ship"))
