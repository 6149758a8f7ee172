"""Rendering stage reports: aligned text tables and JSON files."""

import json

from tfcompress import _files


def format_table(rows: list, columns: list) -> str:
    """Formats dict rows as an aligned plain-text table.

    Args:
      rows: dicts holding (at least) the keys named in `columns`.
      columns: `(key, heading)` pairs, in display order.

    Returns:
      The table as one string: a heading line, a rule, one line per row. Integers get
      thousands separators, floats three decimals, None an empty cell.

    Example:
      >>> print(format_table([{"stage": "teacher", "bytes": 1668216}],
      ...                    [("stage", "stage"), ("bytes", ".tflite bytes")]))
    """
    cells = [[heading for _, heading in columns]]
    cells += [[_format_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for number, line in enumerate(cells):
        # The first column is text; the others are numbers, aligned right.
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _format_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_json(path, content: dict, overwrite: bool = False) -> str:
    """Writes `content` as indented JSON, atomically.

    Args:
      path: the file to write.
      content: a JSON-serialisable dict.
      overwrite: replace an existing file.

    Returns:
      The absolute path written.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.

    Example:
      >>> write_json("report.json", {"accuracy": 0.97})
    """
    return _files.write_atomically(path, (json.dumps(content, indent=2) + "\n").encode(), overwrite=overwrite)
