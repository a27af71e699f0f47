"""The val/generations table: a real offline wandb run (wandb.Table files) and a real tensorboard event file."""
import glob
import json
import os

import pytest

from verl.utils.generations_logger import ValidationGenerationsLogger, cell, markdown_table
from verl.utils.tracking import Tracking

COLUMNS = ["step", "input", "output", "top3", "rank", "score"]


def read_tensorboard_texts(folder: str, tag: str) -> dict[int, str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [path] = glob.glob(os.path.join(folder, "events.out.tfevents.*"))
    events = EventAccumulator(path, size_guidance={"tensors": 0})
    events.Reload()
    return {e.step: e.tensor_proto.string_val[0].decode() for e in events.Tensors(f"{tag}/text_summary")}


def test_cells_and_markdown_escaping():
    assert [cell(v) for v in (None, True, 3, 0.5, ["a: t", "b"], "x")] == [None, "True", 3, 0.5, "a: t | b", "x"]
    table = markdown_table(["input", "score"], [["a|b\nc", 1.0], [None, 2]])
    assert table.splitlines() == ["| input | score |", "|---|---|", "| a\\|b<br>c | 1.0 |", "|  | 2 |"]


def test_wandb_table_and_tensorboard_text(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    run_dir = str(tmp_path / "run")
    tracking = Tracking("p", "e", ["wandb", "tensorboard"], {}, local_dir=run_dir)
    table = ValidationGenerationsLogger()
    first = [{"step": 1, "input": "a|b", "output": "o", "top3": ["x: t", "y"], "rank": None, "score": 0.5},
             {"step": 1, "input": "a2", "output": "o2", "top3": [], "rank": 3, "score": -2.0}]
    table.log(tracking, COLUMNS, first, step=1)
    table.log(tracking, COLUMNS, [{"step": 2, "input": "a", "output": "o", "top3": ["x"], "rank": 1, "score": 1.1}],
              step=2)
    with pytest.raises(ValueError, match="columns changed"):
        table.log(tracking, COLUMNS[:-1], first, step=3)
    tracking.finish()

    files = sorted(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*", "files", "media", "table", "val",
                                          "generations_*.table.json")))
    assert len(files) == 2  # one table per validation, the later one holding every row so far
    tables = [json.load(open(f)) for f in files]
    last = max(tables, key=lambda t: len(t["data"]))
    assert last["columns"] == COLUMNS
    assert last["data"] == [[1, "a|b", "o", "x: t | y", None, 0.5], [1, "a2", "o2", "", 3, -2.0],
                            [2, "a", "o", "x", 1, 1.1]]
    texts = read_tensorboard_texts(os.path.join(run_dir, "tensorboard"), "val/generations")
    assert sorted(texts) == [1, 2]
    assert "| 1 | a\\|b | o | x: t \\| y |  | 0.5 |" in texts[1] and "| 2 | a | o | x | 1 | 1.1 |" in texts[2]
