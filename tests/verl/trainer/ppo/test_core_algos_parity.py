"""Our core_algos against PyPI verl's (the pinned wheel, loaded as ``pypi_verl`` by reference_verl.py): agg_loss,
the registered policy losses (vanilla, gspo), v0.4's compute_policy_loss and the value loss give the same values,
gradients and metrics for every aggregation mode and every combination of global normalisers (dp_size,
batch_num_tokens, global_batch_size, loss_scale_factor), on random float64 tensors with ragged and empty rows."""
import itertools

import pytest
import torch

import reference_verl
from verl.trainer.ppo import core_algos as ours


@pytest.fixture(scope="module")
def theirs():
    return reference_verl.core_algos()


def _batch(seed: int, rows: int = 6, width: int = 7, empty_row: bool = True) -> dict:
    """Random per-token tensors [rows, width] with ragged lengths; row 2 is fully masked when ``empty_row``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (rows,), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).double()
    if empty_row:
        mask[2] = 0
    old = -torch.rand(rows, width, generator=g, dtype=torch.float64) * 3
    return {
        "loss_mat": torch.randn(rows, width, generator=g, dtype=torch.float64),
        "mask": mask,
        "old_log_prob": old,
        "log_prob": old + 0.3 * torch.randn(rows, width, generator=g, dtype=torch.float64),
        "advantages": torch.randn(rows, 1, generator=g, dtype=torch.float64).expand(rows, width)
        + 0.1 * torch.randn(rows, width, generator=g, dtype=torch.float64),
        "is_weights": torch.rand(rows, width, generator=g, dtype=torch.float64) + 0.5,
    }


def _normalisers(mask: torch.Tensor) -> list[dict]:
    """Every combination a trainer passes: none (one rank, this batch's counts), this batch's true global counts,
    arbitrary global counts (another rank's rows), two and four ranks; with and without a loss_scale_factor."""
    tokens, rows = float(mask.sum()), float((mask.sum(-1) > 0).sum())
    counts = [{}, {"batch_num_tokens": tokens, "global_batch_size": rows},
              {"batch_num_tokens": tokens + 17.0, "global_batch_size": rows + 5.0}]
    combos = []
    for count, dp, scale in itertools.product(counts, (1, 2, 4), (None, 3.0, 1000.0)):
        if dp > 1 and not count:
            continue  # both refuse (see test_both_refuse_dp_without_global_counts)
        combos.append({"dp_size": dp, **count, **({} if scale is None else {"loss_scale_factor": scale})})
    return combos


def _cases():
    for mode, seed in itertools.product(ours.LOSS_AGG_MODES, (0, 1)):
        mask = _batch(seed)["mask"]
        for kwargs in _normalisers(mask):
            name = "-".join(f"{k}={v}" for k, v in kwargs.items())
            yield pytest.param(mode, seed, kwargs, id=f"{mode}-s{seed}-{name}")


def test_both_have_the_same_aggregation_modes_and_loss_names(theirs):
    assert set(ours.LOSS_AGG_MODES) == {"token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean",
                                        "seq-mean-token-sum-norm"}
    for mode in ours.LOSS_AGG_MODES:  # verl's ActorConfig accepts exactly its agg_loss modes
        reference_verl.actor_config(loss_agg_mode=mode)
    for name in ours.POLICY_LOSS_REGISTRY:
        assert name in theirs.POLICY_LOSS_REGISTRY, name


@pytest.mark.parametrize("mode,seed,kwargs", list(_cases()))
def test_agg_loss_matches(theirs, mode, seed, kwargs):
    b = _batch(seed)
    expected = theirs.agg_loss(b["loss_mat"], b["mask"], mode, **kwargs)
    got = ours.agg_loss(b["loss_mat"], b["mask"], mode, **kwargs)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_both_refuse_dp_without_global_counts(theirs, mode):
    b = _batch(0)
    with pytest.raises(ValueError):
        theirs.agg_loss(b["loss_mat"], b["mask"], mode, dp_size=2)
    with pytest.raises(ValueError, match="dp_size=2 needs the global (batch_num_tokens|global_batch_size)"):
        ours.agg_loss(b["loss_mat"], b["mask"], mode, dp_size=2)


def _policy_loss_run(fn, b, mode, config, with_is_weights):
    log_prob = b["log_prob"].clone().requires_grad_(True)
    loss, metrics = fn(old_log_prob=b["old_log_prob"], log_prob=log_prob, advantages=b["advantages"],
                       response_mask=b["mask"], loss_agg_mode=mode, config=config,
                       rollout_is_weights=b["is_weights"] if with_is_weights else None)
    loss.backward()
    return loss.detach(), log_prob.grad, metrics


CLIPS = {"vanilla": [{"clip_ratio": 0.2}, {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28,
                                                   "clip_ratio_c": 2.0}],
         "gspo": [{"clip_ratio": 0.2}, {"clip_ratio_low": 3e-4, "clip_ratio_high": 4e-4}]}


@pytest.mark.parametrize("loss_mode", ["vanilla", "gspo"])
@pytest.mark.parametrize("mode,seed,kwargs", list(_cases()))
def test_policy_losses_match_in_value_gradient_and_metrics(theirs, loss_mode, mode, seed, kwargs):
    b = _batch(seed)
    for clip, with_is_weights in itertools.product(CLIPS[loss_mode], (False, True)):
        # verl's ActorConfig fills clip_ratio_low/high with 0.2 when not given; ours reads None as clip_ratio
        clip = {"clip_ratio_low": clip.get("clip_ratio", 0.2), "clip_ratio_high": clip.get("clip_ratio", 0.2), **clip}
        their_cfg = reference_verl.actor_config(loss_agg_mode=mode, global_batch_info=dict(kwargs), **clip)
        our_cfg = {**clip, "loss_agg_mode": mode, "global_batch_info": dict(kwargs)}
        expected = _policy_loss_run(theirs.get_policy_loss_fn(loss_mode), b, mode, their_cfg, with_is_weights)
        got = _policy_loss_run(ours.get_policy_loss_fn(loss_mode), b, mode, our_cfg, with_is_weights)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got[1], expected[1], rtol=1e-12, atol=1e-12)
        assert got[2] == pytest.approx(expected[2], rel=1e-12, abs=1e-12)
        assert expected[1].abs().sum() > 0  # some tokens are inside the clip range and carry gradient


@pytest.mark.filterwarnings("ignore:.*compute_policy_loss' is deprecated:FutureWarning")
@pytest.mark.parametrize("mode", ours.LOSS_AGG_MODES)
def test_v04_compute_policy_loss_matches(theirs, mode):
    b = _batch(3, empty_row=False)
    clip = dict(cliprange=0.2, cliprange_low=0.15, cliprange_high=0.28, clip_ratio_c=2.5)
    expected = theirs.compute_policy_loss(b["old_log_prob"], b["log_prob"], b["advantages"], b["mask"], **clip,
                                          loss_agg_mode=mode)
    got = ours.compute_policy_loss(b["old_log_prob"], b["log_prob"], b["advantages"], b["mask"], **clip,
                                   loss_agg_mode=mode)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode,seed,kwargs", list(_cases()))
def test_value_loss_matches(theirs, mode, seed, kwargs):
    b = _batch(seed)
    values = b["old_log_prob"] + 2
    vpreds, returns = values + 0.8 * b["loss_mat"], values + b["advantages"]
    expected = theirs.compute_value_loss(vpreds=vpreds, returns=returns, values=values, response_mask=b["mask"],
                                         cliprange_value=0.5, loss_agg_mode=mode, **kwargs)
    got = ours.compute_value_loss(vpreds=vpreds, returns=returns, values=values, response_mask=b["mask"],
                                  cliprange_value=0.5, loss_agg_mode=mode, **kwargs)
    for g, e in zip(got, expected):
        torch.testing.assert_close(torch.as_tensor(g), torch.as_tensor(e), rtol=1e-12, atol=1e-12)
