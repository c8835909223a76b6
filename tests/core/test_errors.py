"""WbcError keeps message and path apart; one helper gives an exception's first line."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbc_edge.core.errors import DataError, WbcError, first_line

pytestmark = pytest.mark.edge


def test_message_and_path_are_kept_apart_and_joined_by_str() -> None:
    err = DataError("line 3: expected 3 fields", Path("groups.csv"))
    assert err.message == "line 3: expected 3 fields" and err.path == Path("groups.csv")
    assert str(err) == "groups.csv: line 3: expected 3 fields"
    assert str(WbcError("no path")) == "no path" and WbcError("no path").path is None


def test_first_line_skips_blank_lines_and_falls_back_to_the_type() -> None:
    assert first_line(ValueError("\n  first\nsecond")) == "first"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("x" * 500), 10) == "x" * 10
