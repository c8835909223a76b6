"""Who and what a run is about: the specimen's id and the people who ran and signed it.

- `sample`: a slide or accession id as a lab prints it on a label: 1-64 ASCII letters, digits and
  `- . _ / : #`, starting with a letter or digit (no spaces, nothing a CSV, HTML page or HL7
  message would have to interpret).
- `operator` and `reviewer`: a person's name or staff id: 1-64 characters, letters of any script,
  digits, single spaces and `. ' -`.

Each is checked where it enters (command line, review form, report.json) and escaped again
wherever it is written (HTML, CSV, HL7); a bad value is one line naming the field.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 64
_SAMPLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:#-]*")
_NAME_PUNCT = set(".'-")


def sample_problem(text: Any) -> str | None:
    """Why `text` is not a sample id, or None when it is one."""
    if not isinstance(text, str) or not text:
        return "is empty"
    if len(text) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not _SAMPLE.fullmatch(text):
        return "may hold only letters, digits and - . _ / : # (starting with a letter or digit)"
    return None


def name_problem(text: Any) -> str | None:
    """Why `text` is not an operator's or reviewer's name, or None when it is one."""
    if not isinstance(text, str) or not text.strip():
        return "is empty"
    if len(text) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if text != text.strip() or "  " in text:
        return "has leading, trailing or double spaces"
    for ch in text:
        kind = unicodedata.category(ch)
        if not (kind[0] in "LMN" or ch == " " or ch in _NAME_PUNCT):
            return "may hold only letters, digits, spaces and . ' -"
    return None


def _argument(problem) -> Any:
    def check(text: str) -> str:
        why = problem(text)
        if why is not None:
            raise argparse.ArgumentTypeError(f"{text[:MAX_LENGTH]!r} {why}")
        return text

    return check


sample_argument = _argument(sample_problem)
name_argument = _argument(name_problem)


@dataclass(frozen=True)
class Identity:
    """The sample and operator of a run (either may be unknown)."""

    sample: str | None = None
    operator: str | None = None

    def fields(self) -> dict[str, str]:
        """The known fields, as JSONL records and report.json's meta carry them."""
        return {k: v for k, v in (("sample", self.sample), ("operator", self.operator)) if v}
