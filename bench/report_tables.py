"""Report tables and their Markdown, LaTeX (booktabs) and CSV renderings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from tabulate import tabulate

MISSING = "missing"
# Names longer than this many characters are shortened in Markdown and LaTeX. CSV keeps them whole.
MAX_NAME_CHARS = 28

# Characters that LaTeX treats as commands or delimiters, mapped to text-mode forms that
# compile in a plain pdflatex document with the default OT1 or T1 font encoding.
LATEX_REPLACEMENTS = {
    "\\": r"\textbackslash{}",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "…": r"\ldots{}",
}
# Characters that GitHub Markdown would read as table delimiters, emphasis, code, HTML or math.
MARKDOWN_SPECIAL = "\\|*_`<>[]$"


def escape_latex(text: object) -> str:
    """Escape `text` for LaTeX text mode, one character at a time, so no escape is escaped twice."""
    return "".join(LATEX_REPLACEMENTS.get(character, character) for character in str(text))


def escape_markdown(text: object) -> str:
    """Escape the characters of `text` that GitHub Markdown tables would interpret."""
    return "".join("\\" + character if character in MARKDOWN_SPECIAL else character for character in str(text))


@dataclass
class Table:
    """One citable table: display cells for Markdown and LaTeX, raw values for CSV.

    `identifier` (such as `T-LB-iris`) stays the same across versions, so a citation keeps
    pointing at the same table. `name_columns` are the columns whose long names are shortened.
    """

    identifier: str
    title: str
    headers: list[str]
    rows: list[list[str]]
    legend: list[str]
    caption: str = ""
    numeric_columns: tuple[int, ...] = ()
    name_columns: tuple[int, ...] = (0,)
    raw: pd.DataFrame = field(default_factory=pd.DataFrame)

    def shortened(self) -> tuple[list[list[str]], dict[str, str]]:
        """Return the rows with long names shortened, and the short-to-full name mapping."""
        full_names = sorted({row[column] for row in self.rows for column in self.name_columns})
        mapping: dict[str, str] = {}
        short_of: dict[str, str] = {}
        for name in full_names:
            if len(name) <= MAX_NAME_CHARS:
                short_of[name] = name
                continue
            short = name[: MAX_NAME_CHARS - 1] + "…"
            suffix = 2
            while short in mapping or short in full_names:
                tail = f"…{suffix}"
                short = name[: MAX_NAME_CHARS - len(tail)] + tail
                suffix += 1
            mapping[short] = name
            short_of[name] = short
        rows = [
            [short_of[cell] if column in self.name_columns else cell for column, cell in enumerate(row)]
            for row in self.rows
        ]
        return rows, mapping


def render_markdown(table: Table, heading_level: int = 2) -> str:
    """Render `table` as a GitHub Markdown section: heading, caption, table, name mapping and legend."""
    rows, mapping = table.shortened()
    parts = [f"{'#' * heading_level} {escape_markdown(table.identifier)}: {escape_markdown(table.title)}", ""]
    if table.caption:
        parts += [escape_markdown(table.caption), ""]
    if rows:
        # Cells are escaped before tabulate pads them, so the column widths count the backslashes.
        escaped = [[escape_markdown(cell) for cell in row] for row in rows]
        align = ["right" if column in table.numeric_columns else "left" for column in range(len(table.headers))]
        headers = [escape_markdown(header) for header in table.headers]
        parts += [tabulate(escaped, headers=headers, tablefmt="github", disable_numparse=True, colalign=align), ""]
    else:
        parts += ["No rows: nothing to report in this table.", ""]
    if mapping:
        pairs = [f"{escape_markdown(short)} = {escape_markdown(full)}" for short, full in mapping.items()]
        parts += ["Shortened names: " + "; ".join(pairs) + ".", ""]
    parts += [f"Legend of {escape_markdown(table.identifier)}:", ""] + [f"- {escape_markdown(line)}" for line in table.legend] + [""]
    return "\n".join(parts)


def render_latex(table: Table) -> str:
    """Render `table` as a booktabs `table` environment labelled with its identifier.

    The document that inputs it needs `\\usepackage{booktabs}`.
    """
    rows, mapping = table.shortened()
    headers = [escape_latex(header) for header in table.headers]
    escaped = [[escape_latex(cell) for cell in row] for row in rows]
    # Pad each column to the width of its longest escaped cell, so the source reads as a grid.
    widths = [max([len(headers[c])] + [len(row[c]) for row in escaped]) for c in range(len(headers))]
    spec = "".join("r" if column in table.numeric_columns else "l" for column in range(len(headers)))

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(widths[c]) if c in table.numeric_columns else cell.ljust(widths[c])
                  for c, cell in enumerate(cells)]
        return "  " + " & ".join(padded).rstrip() + r" \\"

    caption = f"{table.identifier}: {table.title}" + (f". {table.caption}" if table.caption else "")
    parts = [
        r"\begin{table}[htbp]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{escape_latex(caption)}}}",
        rf"\label{{{_latex_label(table.identifier)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        line(headers),
        r"\midrule",
    ]
    parts += [line(row) for row in escaped] if escaped else [
        rf"  \multicolumn{{{len(headers)}}}{{l}}{{No rows: nothing to report in this table.}} \\"
    ]
    parts += [r"\bottomrule", r"\end{tabular}", ""]
    notes = list(table.legend)
    if mapping:
        notes.append("Shortened names: " + "; ".join(f"{short} = {full}" for short, full in mapping.items()) + ".")
    parts += [r"\par\smallskip\begin{minipage}{0.95\linewidth}\raggedright"]
    parts += [escape_latex(note) + r"\\" for note in notes]
    parts += [r"\end{minipage}", r"\end{table}", ""]
    return "\n".join(parts)


def _latex_label(identifier: str) -> str:
    # Every character of the identifier other than letters, digits and - : . becomes a dash in the label.
    return "tab:" + "".join(c if c.isalnum() or c in "-:." else "-" for c in identifier)


def render_csv(table: Table) -> str:
    """Render the raw values of `table` as CSV with whole names and unrounded numbers."""
    return table.raw.to_csv(index=False, float_format="%.10g", lineterminator="\n")


def format_number(value: object, fmt: str = ".3g") -> str:
    """Format a number for display, or `missing` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return format(value, fmt)


def format_count(value: object) -> str:
    """Format a parameter count with thousands separators, or `missing` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:,.0f}" if abs(value) >= 1 else format(value, ".3g")


def format_mean_std(mean: float, std: float, digits: int = 3) -> str:
    """Format `mean ± std`, or `missing` when the mean is NaN, or the mean alone without a spread."""
    if mean is None or math.isnan(mean):
        return MISSING
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
