"""What a class name may be: it becomes a folder name, a CSV cell and HTML, so a safe set only.

A letter or digit first, then letters, digits, space and `_ . + ( ) -`, at most 64 characters:
`NEUTROPHIL`, `band neutrophil`, `blast (myeloid)`. Never `../../tmp/x`, `=HYPERLINK(...)`,
`<script>` or a name with control characters.
"""

from __future__ import annotations

import re

MAX_LENGTH = 64
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9 _.+()\-]{{0,{MAX_LENGTH - 1}}}")


def is_class_name(name: object) -> bool:
    """True for a string in the safe set (and not ending in a space or a dot)."""
    return (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and not name.endswith((" ", "."))
    )


def class_name_problem(name: object) -> str | None:
    """Why `name` is not a usable class name, or None."""
    if is_class_name(name):
        return None
    return (
        f"{name!r} is not a usable class name (a letter or digit first, then letters, digits, "
        f"space and _ . + ( ) -, at most {MAX_LENGTH} characters)"
    )
