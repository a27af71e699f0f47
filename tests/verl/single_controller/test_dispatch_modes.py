"""The dispatch/collect table and @register on their own (no worker processes)."""
from types import SimpleNamespace

import pytest
import torch

from verl.protocol import DataProto
from verl.single_controller.base import Worker
from verl.single_controller.base.decorator import (
    PAD_ROWS_KEY,
    Dispatch,
    Execute,
    collect_dp_compute_data_proto,
    dispatch_all_to_all,
    dispatch_dp_compute_data_proto,
    get_predefined_dispatch_fn,
    get_registered,
    padding_rows_per_rank,
    register,
    register_dispatch_mode,
    strip_padding,
)


@pytest.mark.parametrize(
    "n_rows, world_size, expected",
    [(4, 2, [0, 0]), (5, 2, [0, 1]), (5, 4, [0, 0, 1, 2]), (1, 3, [0, 1, 1]), (6, 1, [0])],
)
def test_padding_rows_sit_on_the_last_ranks(n_rows, world_size, expected):
    assert padding_rows_per_rank(n_rows, world_size) == expected
    chunk = -(-n_rows // world_size)
    assert sum(chunk - p for p in expected) == n_rows


def test_dp_compute_proto_dispatch_then_collect_is_the_identity_for_one_row_per_input():
    group = SimpleNamespace(world_size=3)
    data = DataProto.from_dict(tensors={"x": torch.arange(7)})
    (chunks,), kwargs = dispatch_dp_compute_data_proto(group, data)
    assert [len(c) for c in chunks] == [3, 3, 3]
    pad_rows = kwargs[PAD_ROWS_KEY]
    outputs = [strip_padding(c, p, len(c), "m") for c, p in zip(chunks, pad_rows)]
    assert collect_dp_compute_data_proto(group, outputs).batch["x"].tolist() == list(range(7))


def test_dp_compute_proto_dispatch_errors_name_the_bad_argument():
    group = SimpleNamespace(world_size=2)
    a = DataProto.from_dict(tensors={"x": torch.arange(3)})
    b = DataProto.from_dict(tensors={"x": torch.arange(4)})
    with pytest.raises(ValueError, match="different lengths"):
        dispatch_dp_compute_data_proto(group, a, other=b)
    with pytest.raises(TypeError, match="scale is a int; only DataProto"):
        dispatch_dp_compute_data_proto(group, a, scale=3)


def test_strip_padding_refuses_outputs_it_cannot_align():
    out = DataProto.from_dict(tensors={"x": torch.arange(4)})
    with pytest.raises(ValueError, match="generate: returned 4 rows for 2 input rows"):
        strip_padding(out, 1, 2, "generate")
    assert strip_padding(out, 0, 2, "generate") is out


def test_all_to_all_splits_world_size_lists_and_broadcasts_the_rest():
    args, kwargs = dispatch_all_to_all(SimpleNamespace(world_size=2), [1, 2], "s", k=[3])
    assert args == ([1, 2], ["s", "s"]) and kwargs == {"k": [[3], [3]]}


def test_register_records_modes_and_rejects_unknown_ones():
    class W(Worker):
        @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO, execute_mode=Execute.RANK_ZERO, blocking=False)
        def f(self, data):
            return data

    spec = get_registered(W.f)
    assert spec.dispatch_mode == Dispatch.DP_COMPUTE_PROTO
    assert (spec.execute_mode, spec.blocking) == (Execute.RANK_ZERO, False)
    assert W().f(1) == 1  # still a plain method
    with pytest.raises(ValueError, match="unknown dispatch mode 'NOPE'"):
        register(dispatch_mode="NOPE")
    with pytest.raises(ValueError, match="already exists"):
        register_dispatch_mode("ONE_TO_ALL", lambda wg, *a: a, lambda wg, o: o)
    assert get_predefined_dispatch_fn("ONE_TO_ALL") is get_predefined_dispatch_fn(Dispatch.ONE_TO_ALL)


def test_worker_reads_its_rank_from_the_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = Worker()
    assert (w.rank, w.world_size, w.local_rank) == (1, 2, 1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK=2 is outside WORLD_SIZE=2"):
        Worker()
