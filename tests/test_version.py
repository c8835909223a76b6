"""`--version` on every command and subcommand, from the package metadata."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wbc_edge.core.cli_support import package_version


def _mains() -> dict[str, Callable[[list[str]], int]]:
    from wbc_edge.convert.cli import main as convert_main
    from wbc_edge.edge_app.cli import main as edge_main
    from wbc_edge.train.cli import main as train_main

    return {"wbc-train": train_main, "wbc-convert": convert_main, "wbc-edge": edge_main}


COMMANDS = [
    ("wbc-train", []),
    ("wbc-train", ["groups"]),
    ("wbc-train", ["split"]),
    ("wbc-train", ["card"]),
    ("wbc-train", ["colour-step"]),
    ("wbc-convert", []),
    ("wbc-edge", []),
    ("wbc-edge", ["classify"]),
    ("wbc-edge", ["run"]),
    ("wbc-edge", ["calibrate"]),
    ("wbc-edge", ["review"]),
    ("wbc-edge", ["bench"]),
]


@pytest.mark.parametrize(("prog", "sub"), COMMANDS, ids=[" ".join([p, *s]) for p, s in COMMANDS])
def test_every_command_prints_the_package_version(capsys, prog: str, sub: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        _mains()[prog]([*sub, "--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == " ".join([prog, *sub, package_version()])


def test_every_edge_subcommand_has_it() -> None:
    from wbc_edge.edge_app.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subs.items():
        assert any("--version" in a.option_strings for a in sub._actions), name


def test_the_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert package_version() == version("wbc-edge")
