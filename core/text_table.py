"""The one aligned text table the commands print (`wbc-convert`'s summary, `wbc-edge verify`
and `bench`): columns two spaces apart, the first row a header."""

from __future__ import annotations


def aligned_table(rows: list[list[str]], right_from: int | None = None) -> str:
    """Rows as aligned text; columns from index `right_from` on are right-aligned (numbers)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def cell(i: int, text: str, width: int) -> str:
        right = right_from is not None and i >= right_from
        return text.rjust(width) if right else text.ljust(width)

    return "\n".join(
        "  ".join(cell(i, c, w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in rows
    )
