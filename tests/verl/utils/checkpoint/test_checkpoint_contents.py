"""verl's checkpoint keys: save_contents / load_contents, and the older contents (wins when set)."""
import pytest

from verl.utils.checkpoint.checkpoint_contents import checkpoint_contents_errors, resolve_checkpoint_contents


def test_verl_default_writes_no_hf_weights():
    assert resolve_checkpoint_contents(None) == (["model", "optimizer", "extra"], ["model", "optimizer", "extra"])
    assert resolve_checkpoint_contents({}) == (["model", "optimizer", "extra"], ["model", "optimizer", "extra"])


def test_save_and_load_contents_and_load_defaulting_to_save():
    assert resolve_checkpoint_contents({"save_contents": ["model", "hf_model"], "load_contents": ["model"]}) == \
        (["model", "hf_model"], ["model"])
    assert resolve_checkpoint_contents({"save_contents": ["model", "hf_model"]}) == \
        (["model", "hf_model"], ["model", "hf_model"])


def test_legacy_contents_is_used_for_both():
    section = {"contents": ["model", "hf_model"], "save_contents": ["model", "optimizer", "extra"]}
    assert resolve_checkpoint_contents(section) == (["model", "hf_model"], ["model", "hf_model"])


@pytest.mark.parametrize("section, key", [({"save_contents": ["model", "weights"]}, "x.checkpoint.save_contents"),
                                          ({"load_contents": ["optim"]}, "x.checkpoint.load_contents"),
                                          ({"contents": "model"}, "x.checkpoint.contents")])
def test_bad_entries_name_the_key(section, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        resolve_checkpoint_contents(section, "x.checkpoint")
    assert key in checkpoint_contents_errors(section, "x.checkpoint")[0]
