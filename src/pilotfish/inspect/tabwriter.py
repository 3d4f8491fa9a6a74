"""Go `text/tabwriter` layout, so our tables match istioctl's byte for byte.

istioctl prints every table through `tabwriter.NewWriter(out, minwidth=0, tabwidth=8, padding=N, ' ', 0)`.
Its layout is not "pad every column to the widest cell of the table": a column's width is computed per
*column block*, a run of consecutive lines that all have a tab-terminated cell in that column. A line with
fewer cells ends the blocks of the columns it lacks, and the last cell of a line (the text after its last
tab) never influences any width and is never padded. Empty cells still count `padding` towards the width.
We reproduce those rules here (widths in code points, like Go's rune count) rather than approximating
them, because the conformance outputs compare trailing spaces too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def tabulate(rows: Iterable[Sequence[str]], padding: int, minwidth: int = 0) -> str:
    """Lay out rows of cells; each row becomes one newline-terminated line.

    A row `("a", "b", "c")` is the Go text `"a\\tb\\tc\\n"`: two tab-terminated cells and a last cell.
    """
    text = "".join("\t".join(row) + "\n" for row in rows)
    return format_text(text, padding, minwidth)


def format_text(text: str, padding: int, minwidth: int = 0) -> str:
    """Format tab-separated text exactly as a flushed Go tabwriter (padchar ' ', flags 0) would."""
    if not text:
        return ""
    ends_with_newline = text.endswith("\n")
    lines = [line.split("\t") for line in (text[:-1] if ends_with_newline else text).split("\n")]
    out: list[str] = []
    _format_block(lines, 0, len(lines), [], padding, minwidth, out)
    result = "\n".join(out)
    return result + "\n" if ends_with_newline else result


def _format_block(
    lines: list[list[str]],
    line0: int,
    line1: int,
    widths: list[int],
    padding: int,
    minwidth: int,
    out: list[str],
) -> None:
    """Recursively find column blocks (Go's `format`) and emit finished lines in order."""
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # A cell exists in this column: everything before `this` is complete at the current depth.
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format_block(lines, line0, this, [*widths, width], padding, minwidth, out)
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        parts: list[str] = []
        for index, cell in enumerate(cells):
            if index < len(widths):
                parts.append(cell + " " * max(widths[index] - len(cell), 0))
            else:
                parts.append(cell)
        out.append("".join(parts))
