"""Rendering stage reports: aligned text and Markdown tables, JSON, PNG plots and TensorBoard scalars."""

import io
import json
import os

from tfcompress import _files

__all__ = ["format_markdown", "format_table", "stage_columns", "write_all", "write_json"]


def format_table(rows: list, columns: list) -> str:
    """Formats dict rows as an aligned plain-text table.

    Args:
      rows: dicts holding (at least) the keys named in `columns`.
      columns: `(key, heading)` pairs, in display order.

    Returns:
      The table as one string: a heading line, a rule, one line per row. Integers get
      thousands separators, floats three decimals, None an empty cell.

    Examples:
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

    Examples:
      >>> write_json("report.json", {"accuracy": 0.97})
    """
    return _files.write_atomically(path, (json.dumps(content, indent=2) + "\n").encode(), overwrite=overwrite)


# The pipeline's stage table: key and heading of each column.
STAGE_COLUMNS = [
    ("stage", "stage"),
    ("seconds", "seconds"),
    ("parameters", "parameters"),
    ("nonzero_parameters", "non-zero"),
    ("keras_accuracy", "Keras acc."),
    ("tflite_bytes", ".tflite bytes"),
    ("gzip_bytes", "gzip bytes"),
    ("tflite_accuracy", "LiteRT acc."),
    ("latency_ms", "latency ms"),
    ("speedup", "x faster than row 1"),
    ("speedup_interval", "95% interval"),
]


def stage_columns(measure: str = "accuracy") -> list:
    """The stage table's columns for a task's primary measure: accuracy, or "mae" (mean absolute error).

    Examples:
      >>> [heading for _, heading in stage_columns("mae")][4]
      'Keras MAE'
    """
    if measure == "accuracy":
        return list(STAGE_COLUMNS)
    swap = {"keras_accuracy": ("keras_mae", "Keras MAE"), "tflite_accuracy": ("tflite_mae", "LiteRT MAE")}
    return [swap.get(key, (key, heading)) for key, heading in STAGE_COLUMNS]


# What `write_all` writes, by key.
REPORT_FILES = {
    "json": "report.json",
    "markdown": "report.md",
    "accuracy_vs_size": "accuracy_vs_size.png",
    "sparsity": "sparsity.png",
    "latency": "latency.png",
    "widths": "widths.png",  # only when a channels stage ran
}


def format_markdown(rows: list, columns: list) -> str:
    """Formats dict rows as a Markdown table, cells as `format_table` writes them.

    Args:
      rows: dicts holding the keys named in `columns`.
      columns: `(key, heading)` pairs, in display order.

    Returns:
      The table as one string.

    Examples:
      >>> print(format_markdown(report["rows"], STAGE_COLUMNS))
    """
    lines = ["| " + " | ".join(heading for _, heading in columns) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")
    lines += ["| " + " | ".join(_format_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_all(report: dict, paths: dict, overwrite: bool = False) -> dict:
    """Writes the pipeline's report as JSON, a Markdown table and PNG plots.

    The plots: accuracy against gzip size for each stage (what was traded for what),
    each layer's sparsity in the final model, each stage's LiteRT latency, and, when
    channels were pruned, each layer's output channels before and after.

    Args:
      report: the pipeline's report (`rows` with the `STAGE_COLUMNS` keys and `layers`;
        `widths`, layer -> [channels before, after], or None).
      paths: file paths by the keys of `REPORT_FILES`.
      overwrite: replace existing files.

    Returns:
      The paths written, by the keys of `REPORT_FILES` (`widths` only with widths).

    Examples:
      >>> write_all(report, {key: os.path.join("out", name) for key, name in REPORT_FILES.items()})
    """
    rows, measure = report["rows"], report.get("task", {}).get("measure", "accuracy")
    markdown = format_markdown(rows, stage_columns(measure)) + "\n" + latency_note(report.get("cpu")) + "\n"
    written = {
        "markdown": _files.write_atomically(paths["markdown"], markdown.encode(), overwrite=overwrite),
        "accuracy_vs_size": write_figure(paths["accuracy_vs_size"], _accuracy_vs_size(rows, measure), overwrite),
        "sparsity": write_figure(paths["sparsity"], _sparsity(rows[-1]), overwrite),
        "latency": write_figure(paths["latency"], _latency(rows), overwrite),
    }
    if report.get("widths"):
        written["widths"] = write_figure(paths["widths"], _widths(report["widths"]), overwrite)
    written["json"] = paths["json"]
    write_json(paths["json"], dict(report, files=dict(report["files"], **written)), overwrite=overwrite)
    return written


def latency_note(cpu) -> str:
    """The line under the stage table that says how and where its latencies were measured."""
    where = f" on {cpu}" if cpu else ""
    return (
        f"Latency: each stage's model as float32, the last row the exported file, in LiteRT, batch 1, 1 thread, "
        f"XNNPACK{where}; "
        "the files timed side by side in interleaved rounds (tfc.litert.time_side_by_side): median of round medians, "
        "speed-up over the first timed row with a 95% bootstrap interval."
    )


def log_stages(rows: list, log_dir) -> None:
    """Writes each stage's figures as TensorBoard scalars (step = stage number) under `log_dir/stages`."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(os.path.join(os.fspath(log_dir), "stages"))
    with writer.as_default():
        for step, row in enumerate(rows):
            for key in [key for key, _ in STAGE_COLUMNS[1:]] + ["keras_mae", "tflite_mae"]:
                if isinstance(row.get(key), (int, float)) and not isinstance(row.get(key), bool):
                    tf.summary.scalar(key, row[key], step=step)
            tf.summary.text("stage", row["stage"], step=step)
    writer.close()


def new_figure():
    """A blank figure the size of every tfcompress plot, and its axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    return figure, figure.subplots()


def _accuracy_vs_size(rows, measure):
    figure, axes = new_figure()
    key = f"tflite_{measure}"
    measured = [row for row in rows if row.get("gzip_bytes") and row.get(key) is not None]
    axes.plot([row["gzip_bytes"] / 1024 for row in measured], [row[key] for row in measured], "o-")
    for row in measured:
        axes.annotate(row["stage"], (row["gzip_bytes"] / 1024, row[key]), textcoords="offset points",
                      xytext=(5, 5), fontsize=8)  # fmt: skip
    words = "accuracy" if measure == "accuracy" else "mean absolute error"
    axes.set(xlabel="gzip size of the .tflite (KiB)", ylabel=f"{words} in LiteRT (test set)",
             title=f"{words.capitalize()} vs size")  # fmt: skip
    axes.margins(x=0.15, y=0.1)  # room for the stage names
    axes.grid(alpha=0.3)
    return figure


def _sparsity(row):
    figure, axes = new_figure()
    layers = row.get("layers") or []
    axes.barh([layer["layer"] for layer in layers], [layer["sparsity"] for layer in layers])
    axes.set(xlabel="share of zero weights", xlim=(0, 1), title=f"Per-layer sparsity: {row['stage']}")
    axes.invert_yaxis()
    return figure


def _latency(rows):
    figure, axes = new_figure()
    timed = [row for row in rows if row.get("latency_ms") is not None]
    axes.bar([row["stage"] for row in timed], [row["latency_ms"] for row in timed])
    axes.set(ylabel="LiteRT latency, batch 1, 1 thread (ms)", title="Latency per stage")
    axes.tick_params(axis="x", labelrotation=20, labelsize=8)
    return figure


def _widths(widths):
    figure, axes = new_figure()
    names = list(widths)
    positions = range(len(names))
    axes.barh([p - 0.2 for p in positions], [widths[name][0] for name in names], height=0.4, label="before")
    axes.barh([p + 0.2 for p in positions], [widths[name][1] for name in names], height=0.4, label="after")
    axes.set_yticks(list(positions), names, fontsize=7)
    axes.set(xlabel="output channels (0: layer removed)", title="Channels per layer: before and after pruning")
    axes.invert_yaxis()
    axes.legend()
    return figure


def write_figure(path, figure, overwrite: bool = False) -> str:
    """Writes a figure as a PNG, atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return _files.write_atomically(path, buffer.getvalue(), overwrite=overwrite)
