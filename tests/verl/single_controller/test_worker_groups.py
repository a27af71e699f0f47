"""Behaviour of worker groups, run on both backends: in-process (world size 1) and Ray (world size 2).

The group under test colocates two roles in one process per rank (actor with scale 2, critic with
scale 10), built through the backend-agnostic factory the trainer uses.
"""
import numpy as np
import pytest
import torch
from single_controller_test_workers import ProbeWorker

from verl.protocol import DataProto
from verl.single_controller import ClassWithInitArgs, WorkerError, WorkerGroupFuture, make_worker_groups

WORLD_SIZE = {"local": 1, "ray": 2}


@pytest.fixture(scope="module", params=["local", "ray"])
def backend(request):
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    else:
        request.getfixturevalue("clean_local_process")
    return request.param


@pytest.fixture(scope="module")
def views(backend):
    views = make_worker_groups(
        backend,
        {
            "actor": ClassWithInitArgs(ProbeWorker, role="actor", scale=2),
            "critic": ClassWithInitArgs(ProbeWorker, role="critic", scale=10),
        },
        resource_pool_spec={"global_pool": [WORLD_SIZE[backend]]},
        call_timeout_s=60,
    )
    yield views
    if backend == "ray":
        import ray

        for worker in views["actor"].workers:
            ray.kill(worker)
        views["actor"].resource_pool.remove_placement_groups()


def make_batch(n: int) -> DataProto:
    return DataProto.from_dict(
        tensors={"x": torch.arange(n, dtype=torch.float32)},
        non_tensors={"uid": np.array([f"row{i}" for i in range(n)], dtype=object)},
    )


def test_ranks_environment_and_all_reduce(views, backend):
    ws = WORLD_SIZE[backend]
    infos = views["actor"].whoami()
    assert [i["rank"] for i in infos] == list(range(ws))
    assert {i["world_size"] for i in infos} == {ws}
    assert [i["local_rank"] for i in infos] == list(range(ws))
    assert len({i["master"] for i in infos}) == 1
    # every rank contributes rank + 1 through gloo
    assert views["actor"].all_reduce_rank_plus_one() == [ws * (ws + 1) / 2] * ws


@pytest.mark.parametrize("n_rows", [1, 4, 5, 7])
def test_dp_compute_proto_splits_evenly_and_restores_order(views, backend, n_rows):
    ws = WORLD_SIZE[backend]
    out = views["actor"].scale_rows(make_batch(n_rows))

    assert len(out) == n_rows  # padding rows were dropped again
    torch.testing.assert_close(out.batch["x"], torch.arange(n_rows, dtype=torch.float32) * 2)
    assert list(out.non_tensor_batch["uid"]) == [f"row{i}" for i in range(n_rows)]
    # contiguous equal chunks: every rank got ceil(n / ws) rows (padding included)
    assert set(out.batch["chunk_rows"].tolist()) == {-(-n_rows // ws)}
    assert out.batch["seen_by_rank"].tolist() == sorted(out.batch["seen_by_rank"].tolist())
    # metrics from every rank survive collection
    assert len(out.meta_info["metrics"]["actor/rows"]) == ws


def test_dp_compute_proto_rejects_non_dataproto(views):
    with pytest.raises(TypeError, match="argument 0 is a dict"):
        views["actor"].scale_rows({"x": [1, 2]})


def test_padding_cannot_be_dropped_from_outputs_with_other_row_counts(views, backend):
    ws = WORLD_SIZE[backend]
    assert len(views["actor"].repeat_rows(make_batch(2 * ws))) == 4 * ws  # no padding: any output is fine
    if ws > 1:
        # 5 rows on 2 ranks: rank 1 holds 2 real rows + 1 padding row and returns 6 rows
        with pytest.raises(WorkerError, match="repeat_rows: returned 6 rows for 3 input rows, of which 1 are padding"):
            views["actor"].repeat_rows(make_batch(5))


def test_other_dispatch_modes(views, backend):
    ws = WORLD_SIZE[backend]
    wg = views["actor"]
    assert wg.count_rows(make_batch(3)) == [{"rank": r, "rows": -(-3 // ws)} for r in range(ws)]
    assert wg.add(list(range(ws)), [10] * ws) == [10 + r for r in range(ws)]
    assert wg.pair([f"r{r}" for r in range(ws)], "shared") == [(f"r{r}", "shared") for r in range(ws)]
    assert wg.rank_of_answer() == 0
    assert wg.rank_plus_ten() == sum(r + 10 for r in range(ws))  # a mode added with register_dispatch_mode
    with pytest.raises(TypeError, match="one item per rank"):
        wg.add(1, 2)


def test_execute_rank_zero_runs_only_on_rank_zero(views, backend):
    wg = views["critic"]
    before = wg.get_rank_zero_calls()
    assert wg.bump_on_rank_zero() == 0
    after = wg.get_rank_zero_calls()
    assert [a - b for a, b in zip(after, before)] == [1] + [0] * (WORLD_SIZE[backend] - 1)


def test_colocated_roles_share_a_process_but_not_state(views, backend):
    actor, critic = views["actor"].whoami(), views["critic"].whoami()
    assert [i["role"] for i in actor] == ["actor"] * WORLD_SIZE[backend]
    assert [i["role"] for i in critic] == ["critic"] * WORLD_SIZE[backend]
    assert [i["pid"] for i in actor] == [i["pid"] for i in critic]
    assert len({i["pid"] for i in actor}) == WORLD_SIZE[backend]
    torch.testing.assert_close(views["critic"].scale_rows(make_batch(3)).batch["x"], torch.tensor([0.0, 10.0, 20.0]))


@pytest.mark.parametrize("n_rows", [4, 5])
def test_non_blocking_future_feeds_the_next_dp_call(views, n_rows):
    future = views["actor"].scale_rows_async(make_batch(n_rows))
    assert isinstance(future, WorkerGroupFuture)
    # the critic receives the actor's still-running result; each of its ranks fetches and splits it
    chained = views["critic"].scale_rows(future)
    torch.testing.assert_close(chained.batch["x"], torch.arange(n_rows, dtype=torch.float32) * 20)
    assert list(chained.non_tensor_batch["uid"]) == [f"row{i}" for i in range(n_rows)]
    torch.testing.assert_close(future.get().batch["x"], torch.arange(n_rows, dtype=torch.float32) * 2)


def test_worker_exception_names_method_rank_and_traceback(views, backend):
    failing_rank = WORLD_SIZE[backend] - 1
    with pytest.raises(WorkerError) as info:
        views["actor"].raise_on_rank(failing_rank)
    err = info.value
    assert (err.method, err.rank) == ("actor.raise_on_rank", failing_rank)
    assert f"deliberate failure on rank {failing_rank}" in str(err)
    assert "single_controller_test_workers.py" in err.remote_traceback  # the worker's own frames
    assert views["actor"].rank_of_answer() == 0  # the group stays usable
