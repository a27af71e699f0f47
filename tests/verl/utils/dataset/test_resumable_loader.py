"""verl/utils/dataset/resumable_loader.py: a restored loader continues exactly where the saved one stopped."""
from verl.utils.dataset import ResumableDataLoader


def batches(loader, n):
    out = []
    while len(out) < n:
        for b in loader:
            out.append(b)
            if len(out) == n:
                break
    return out


def test_resume_mid_epoch_and_across_epochs_matches_a_straight_run():
    data = list(range(10))
    straight = batches(ResumableDataLoader(data, 3, list, shuffle=True, seed=7), 7)  # 3 batches per epoch
    first = ResumableDataLoader(data, 3, list, shuffle=True, seed=7)
    head = batches(first, 4)  # one epoch and one batch
    resumed = ResumableDataLoader(data, 3, list, shuffle=True, seed=7)
    resumed.load_state_dict(first.state_dict())
    assert head + batches(resumed, 3) == straight
    assert straight[0] != straight[3]  # epochs are shuffled differently
    assert sorted(sum(straight[:3], [])) != data and len(set(sum(straight[:3], []))) == 9  # drop_last
