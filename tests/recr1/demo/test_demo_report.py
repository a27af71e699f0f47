"""results.json / results.md / curves.png from evaluation outputs and trainer metrics."""
import json
import os

from recr1.demo.paths import DemoPaths
from recr1.demo.report import domain_name, markdown_table, verdict, write_report
from recr1.demo.settings import FAST

SOURCES = ("amazon_c4_Baby_Products_test", "amazon_c4_Video_Games_test")


def _write_eval(paths: DemoPaths, method: str, ndcg100: float, format_ok):
    row = {"n": 10, "ndcg@10": ndcg100 / 2, "ndcg@100": ndcg100, "recall@100": 0.9, "format_ok": format_ok}
    table = {source: dict(row) for source in SOURCES}
    table["all"] = dict(row, n=20)
    os.makedirs(paths.eval_dir(method), exist_ok=True)
    with open(os.path.join(paths.eval_dir(method), "metrics.json"), "w") as f:
        json.dump({"table": table}, f)


def test_domain_names():
    assert domain_name("amazon_c4_Baby_Products_test") == "Baby_Products"
    assert domain_name("all") == "overall"
    assert domain_name("amazon_c4_val") == "val"


def test_report_files_and_verdict(tmp_path):
    paths = DemoPaths(str(tmp_path))
    for method, value, fmt in (("raw_request", 0.4, None), ("sft", 0.2, 1.0), ("rl", 0.85, 1.0)):
        _write_eval(paths, method, value, fmt)
    os.makedirs(paths.eval_dir("raw_request_val"), exist_ok=True)
    with open(os.path.join(paths.eval_dir("raw_request_val"), "metrics.json"), "w") as f:
        json.dump({"table": {"amazon_c4_val": {"n": 5, "ndcg@10": 0.3, "ndcg@100": 0.41, "recall@100": 1.0,
                                               "format_ok": None}}}, f)
    rows = [{"step": 0, "val-aux/amazon_c4_val/ndcg/mean": 0.2}] + [
        {"step": s, "critic/score/mean": 0.1 * s, "reward/ndcg/mean": 0.05 * s} for s in range(1, 6)] + [
        {"step": 5, "val-aux/amazon_c4_val/ndcg/mean": 0.6}]
    stages = {"catalog": {"seconds": 1.5, "summary": "x", "skipped": False},
              "rl": {"seconds": 10.0, "summary": "y", "skipped": True}}
    results, table = write_report(paths, FAST, stages, rows, "val-aux/amazon_c4_val/ndcg/mean")

    on_disk = json.load(open(paths.results_json))
    assert on_disk == json.loads(json.dumps(results))
    assert list(on_disk["test"]) == ["raw_request", "sft", "rl"]
    assert list(on_disk["test"]["rl"]) == ["overall", "Baby_Products", "Video_Games"]
    assert set(on_disk["test"]["rl"]["overall"]) >= {"ndcg@10", "ndcg@100", "recall@100", "format_ok"}
    assert on_disk["val_curve"] == [[0, 0.2], [5, 0.6]]
    assert on_disk["val_raw_request_ndcg@100"] == 0.41
    assert on_disk["total_seconds"] == 11.5
    assert on_disk["verdict"]["rl_beats_sft"] and on_disk["verdict"]["rl_beats_raw_request"]
    assert on_disk["verdict"]["rl_over_raw_request"] == round(0.85 / 0.4, 3)
    assert "| **overall** | rl | 20 | 0.425 | 0.850 | 0.900 | 1.000 |" in table
    assert "| Baby_Products | raw_request | 10 | 0.200 | 0.400 | 0.900 | - |" in table
    assert open(paths.results_md).read().count("| Video_Games |") == 3
    with open(paths.curves_png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_verdict_when_rl_loses():
    test = {m: {"overall": {"ndcg@100": v}} for m, v in (("raw_request", 0.5), ("sft", 0.3), ("rl", 0.4))}
    v = verdict(test)
    assert v["rl_beats_sft"] and not v["rl_beats_raw_request"]
    assert "| **overall** | rl |" in markdown_table({m: {"overall": {"n": 1, **test[m]["overall"]}} for m in test})
