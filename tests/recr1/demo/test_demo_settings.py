"""--set NAME=VALUE overrides and the idempotency keys of the stages."""
import pytest

from recr1.demo.settings import FAST, FULL, apply_overrides
from recr1.demo.stamps import chain_key, read_stamp, write_stamp


def test_overrides_keep_types_and_leave_the_profile_untouched():
    s = apply_overrides(FULL, ["rl_steps=12", "rl_lr=1e-4", "dedup_terms=true", "prompt_template=sparse"])
    assert (s.rl_steps, s.rl_lr, s.dedup_terms, s.prompt_template) == (12, 1e-4, True, "sparse")
    assert FULL.rl_steps != 12 and FULL.dedup_terms is False
    assert FAST.rl_steps < FULL.rl_steps and FAST.items < FULL.items


@pytest.mark.parametrize("bad, message", [
    ("rl_step=3", "unknown setting 'rl_step'"),
    ("rl_steps", "expected name=value"),
    ("rl_steps=many", "invalid literal"),
    ("dedup_terms=maybe", "expected true/false"),
])
def test_bad_overrides_name_the_assignment(bad, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(FULL, [bad])


def test_a_changed_setting_changes_its_stage_key_and_every_later_one():
    def keys(settings, stages=(("items",), ("val_size",), ("rl_steps",))):
        key, out = "start", []
        for names in stages:
            key = chain_key(key, settings.fingerprint(list(names)))
            out.append(key)
        return out

    base = keys(FULL)
    assert keys(FULL) == base
    changed = keys(apply_overrides(FULL, ["val_size=7"]))
    assert changed[0] == base[0] and changed[1] != base[1] and changed[2] != base[2]


def test_stamps_round_trip_and_ignore_garbage(tmp_path):
    path = str(tmp_path / "s" / "stage.json")
    assert read_stamp(path) is None
    write_stamp(path, "abc", 1.234, "did it")
    assert read_stamp(path) == {"key": "abc", "state": "done", "seconds": 1.23, "summary": "did it"}
    (tmp_path / "s" / "stage.json").write_text("{not json")
    assert read_stamp(path) is None
