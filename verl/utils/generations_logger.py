"""Validation samples as a table: wandb (``val/generations``, a wandb.Table) and tensorboard (text), verl's
ValidationGenerationsLogger.

wandb tables cannot grow once logged, so each validation logs a new table holding the rows of every validation so
far (verl does the same); the ``step`` column tells them apart. Tensorboard gets this validation's rows as a
markdown table at the step.
"""
from __future__ import annotations

import numbers

TABLE_KEY = "val/generations"


def cell(value) -> str | float | int:
    """A table cell: numbers stay numbers, lists are joined with ' | ', None stays None (an empty cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Number):
        return value
    if isinstance(value, (list, tuple)):
        return " | ".join(str(v) for v in value)
    return str(value)


def markdown_table(columns: list[str], rows: list[list]) -> str:
    """``rows`` (lists of cells in ``columns`` order) as a markdown table; pipes and line breaks in cells are
    escaped so a response cannot break the table."""
    def text(value) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\r", " ").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class ValidationGenerationsLogger:
    """Sends validation samples to the table-capable backends of a :class:`verl.utils.tracking.Tracking`."""

    def __init__(self):
        self.columns: list[str] | None = None
        self.rows: list[list] = []

    def log(self, tracking, columns: list[str], samples: list[dict], step: int) -> None:
        """Log ``samples`` (dicts with at least the ``columns`` keys; a missing key is an empty cell) at ``step``.

        Raises:
            ValueError: the columns differ from an earlier call's (one table holds every validation).
        """
        if not samples:
            return
        if self.columns is None:
            self.columns = list(columns)
        elif list(columns) != self.columns:
            raise ValueError(f"{TABLE_KEY}: columns changed from {self.columns} to {list(columns)}")
        rows = [[cell(sample.get(c)) for c in self.columns] for sample in samples]
        self.rows.extend(rows)
        loggers = getattr(tracking, "loggers", {})
        if "wandb" in loggers:
            wandb_logger = loggers["wandb"]
            table = wandb_logger._wandb.Table(columns=self.columns, data=[list(r) for r in self.rows])
            wandb_logger.run.log({TABLE_KEY: table}, step=step)
        if "tensorboard" in loggers:
            writer = loggers["tensorboard"].writer
            writer.add_text(TABLE_KEY, markdown_table(self.columns, rows), global_step=step)
            writer.flush()
