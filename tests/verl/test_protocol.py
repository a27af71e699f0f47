import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from verl.protocol import DataProto, DataProtoItem, collate_fn, pad_dataproto_to_divisor, unpad_dataproto


def make_proto(n: int, meta=None) -> DataProto:
    return DataProto.from_dict(
        tensors={"input_ids": torch.arange(n * 3).view(n, 3), "score": torch.arange(n, dtype=torch.float32)},
        non_tensors={"uid": [f"u{i}" for i in range(n)], "msgs": [[{"role": "user"}, {"i": i}] for i in range(n)]},
        meta_info=meta if meta is not None else {"temperature": 1.0},
    )


def assert_same(a: DataProto, b: DataProto):
    assert len(a) == len(b)
    assert set(a.batch.keys()) == set(b.batch.keys())
    for k in a.batch.keys():
        assert torch.equal(a.batch[k], b.batch[k]), k
    assert set(a.non_tensor_batch) == set(b.non_tensor_batch)
    for k in a.non_tensor_batch:
        assert list(a.non_tensor_batch[k]) == list(b.non_tensor_batch[k]), k


def test_from_dict_keeps_lists_of_equal_length_as_one_object_per_row():
    dp = make_proto(3)
    assert len(dp) == 3
    assert dp.non_tensor_batch["msgs"].shape == (3,)
    assert dp.non_tensor_batch["msgs"].dtype == object
    assert dp.non_tensor_batch["msgs"][2] == [{"role": "user"}, {"i": 2}]


def test_mismatched_batch_sizes_name_keys_and_sizes():
    with pytest.raises(ValueError, match=r"input_ids.*3.*mask.*4"):
        DataProto.from_dict(tensors={"input_ids": torch.zeros(3, 2), "mask": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match=r"uid.*2 rows.*3"):
        DataProto.from_dict(tensors={"input_ids": torch.zeros(3, 2)}, non_tensors={"uid": ["a", "b"]})


def test_from_single_dict_sorts_tensors_and_arrays_and_rejects_others():
    dp = DataProto.from_single_dict({"x": torch.ones(2, 1), "uid": np.array(["a", "b"], dtype=object)})
    assert list(dp.batch.keys()) == ["x"] and list(dp.non_tensor_batch) == ["uid"]
    with pytest.raises(TypeError, match="'bad'"):
        DataProto.from_single_dict({"x": torch.ones(2), "bad": [1, 2]})


def test_indexing_int_slice_array_mask():
    dp = make_proto(5)
    item = dp[1]
    assert isinstance(item, DataProtoItem)
    assert item.batch["input_ids"].tolist() == [3, 4, 5] and item.non_tensor_batch["uid"] == "u1"
    assert dp[-1].non_tensor_batch["uid"] == "u4"
    assert dp[1:4:2].non_tensor_batch["uid"].tolist() == ["u1", "u3"]
    picked = dp[np.array([4, 0])]
    assert picked.batch["score"].tolist() == [4.0, 0.0] and picked.non_tensor_batch["uid"].tolist() == ["u4", "u0"]
    masked = dp[torch.tensor([True, False, True, False, False])]
    assert masked.non_tensor_batch["uid"].tolist() == ["u0", "u2"]
    assert dp[[3]].batch["input_ids"].tolist() == [[9, 10, 11]]
    with pytest.raises(IndexError):
        dp[5]


def test_select_and_pop():
    dp = make_proto(2)
    sel = dp.select(batch_keys=["score"], non_tensor_batch_keys=["uid"], meta_info_keys=[])
    assert list(sel.batch.keys()) == ["score"] and list(sel.non_tensor_batch) == ["uid"] and sel.meta_info == {}
    with pytest.raises(KeyError, match="nope"):
        dp.select(batch_keys=["nope"])
    popped = dp.pop(batch_keys=["score"], non_tensor_batch_keys=["msgs"], meta_info_keys=["temperature"])
    assert list(popped.batch.keys()) == ["score"] and popped.meta_info == {"temperature": 1.0}
    assert list(dp.batch.keys()) == ["input_ids"] and list(dp.non_tensor_batch) == ["uid"] and dp.meta_info == {}


def test_union_merges_and_refuses_conflicts():
    dp = make_proto(2)
    other = DataProto.from_dict(
        tensors={"values": torch.ones(2), "score": torch.tensor([0.0, 1.0])},
        non_tensors={"uid": ["u0", "u1"], "extra": ["a", "b"]},
        meta_info={"temperature": 1.0, "step": 3},
    )
    dp.union(other)
    assert set(dp.batch.keys()) == {"input_ids", "score", "values"}
    assert set(dp.non_tensor_batch) == {"uid", "msgs", "extra"} and dp.meta_info["step"] == 3
    with pytest.raises(ValueError, match="score"):
        dp.union(DataProto.from_dict(tensors={"score": torch.tensor([5.0, 1.0])}))
    with pytest.raises(ValueError, match="uid"):
        dp.union(DataProto.from_dict(non_tensors={"uid": ["zz", "u1"]}))
    with pytest.raises(ValueError, match="temperature"):
        dp.union(DataProto(meta_info={"temperature": 0.5}))
    with pytest.raises(ValueError, match="batch size|lengths"):
        dp.union(make_proto(3))


@settings(max_examples=25, deadline=None)
@given(n_chunks=st.integers(1, 4), rows_per_chunk=st.integers(1, 4))
def test_chunk_then_concat_is_identity(n_chunks, rows_per_chunk):
    dp = make_proto(n_chunks * rows_per_chunk)
    parts = dp.chunk(n_chunks)
    assert [len(p) for p in parts] == [rows_per_chunk] * n_chunks
    assert_same(DataProto.concat(parts), dp)


def test_chunk_refuses_uneven_and_split_keeps_remainder():
    dp = make_proto(5)
    with pytest.raises(ValueError, match="pad_dataproto_to_divisor"):
        dp.chunk(2)
    assert [len(p) for p in dp.split(2)] == [2, 2, 1]
    assert_same(DataProto.concat(dp.split(2)), dp)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), divisor=st.integers(1, 12))
def test_pad_then_unpad_is_identity(n, divisor):
    dp = make_proto(n)
    padded, pad_size = pad_dataproto_to_divisor(dp, divisor)
    assert len(padded) % divisor == 0 and len(padded) == n + pad_size and pad_size < divisor
    # padding rows are copies of real rows, taken from the start
    assert padded.non_tensor_batch["uid"][n:].tolist() == [f"u{i % n}" for i in range(pad_size)]
    assert_same(unpad_dataproto(padded, pad_size), dp)


def test_concat_merges_worker_metrics_and_keeps_first_meta():
    a = make_proto(1, meta={"metrics": {"actor/pg_loss": [1.0]}, "step": 1})
    b = make_proto(1, meta={"metrics": {"actor/pg_loss": [2.0, 3.0]}, "step": 1})
    out = DataProto.concat([a, b])
    assert out.meta_info == {"metrics": {"actor/pg_loss": [1.0, 2.0, 3.0]}, "step": 1}
    with pytest.raises(ValueError, match="non-tensor keys"):
        DataProto.concat([a, DataProto.from_dict(tensors={"input_ids": torch.zeros(1, 3), "score": torch.zeros(1)})])


def test_repeat_interleaved_and_tiled():
    dp = make_proto(2)
    inter = dp.repeat(3, interleave=True)
    assert inter.non_tensor_batch["uid"].tolist() == ["u0"] * 3 + ["u1"] * 3
    assert inter.batch["score"].tolist() == [0, 0, 0, 1, 1, 1]
    tiled = dp.repeat(2, interleave=False)
    assert tiled.non_tensor_batch["uid"].tolist() == ["u0", "u1", "u0", "u1"]
    assert tiled.batch["input_ids"].tolist() == [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5]]
    assert tiled.non_tensor_batch["msgs"][2] == [{"role": "user"}, {"i": 0}]


def test_reorder_in_place():
    dp = make_proto(3)
    dp.reorder(torch.tensor([2, 0, 1]))
    assert dp.non_tensor_batch["uid"].tolist() == ["u2", "u0", "u1"]
    assert dp.batch["score"].tolist() == [2.0, 0.0, 1.0]


def test_make_iterator_epochs_seed_and_meta():
    dp = make_proto(6)

    def uids(it):
        return [mb.non_tensor_batch["uid"].tolist() for mb in it]

    plain = uids(dp.make_iterator(mini_batch_size=2, epochs=2))
    assert plain == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]] * 2
    shuffled = uids(dp.make_iterator(2, epochs=2, seed=7, dataloader_kwargs={"shuffle": True}))
    assert shuffled == uids(dp.make_iterator(2, epochs=2, seed=7, dataloader_kwargs={"shuffle": True}))
    assert shuffled != plain
    for epoch in (shuffled[:3], shuffled[3:]):  # each epoch sees every row once
        assert sorted(sum(epoch, [])) == [f"u{i}" for i in range(6)]
    assert all(mb.meta_info == {"temperature": 1.0} for mb in dp.make_iterator(3, 1))
    with pytest.raises(ValueError, match="divisible"):
        dp.make_iterator(4, 1)


def test_pickle_and_disk_roundtrip_and_to(tmp_path):
    dp = make_proto(3)
    assert_same(pickle.loads(pickle.dumps(dp)), dp)
    path = tmp_path / "dp.pkl"
    dp.save_to_disk(str(path))
    loaded = DataProto.load_from_disk(str(path))
    assert_same(loaded, dp)
    assert loaded.meta_info == dp.meta_info
    assert dp.to("cpu").batch.device == torch.device("cpu")


def test_non_tensor_only_proto_and_collate():
    dp = DataProto.from_dict(non_tensors={"uid": ["a", "b", "c"]})
    assert len(dp) == 3 and dp.batch is None
    assert DataProto.concat(dp.chunk(3)).non_tensor_batch["uid"].tolist() == ["a", "b", "c"]
    full = make_proto(3)
    back = collate_fn([full[i] for i in range(3)])
    assert_same(back, full)
