"""verl/utils/checkpoint/lora_weights.py: the merge W + alpha/r * B @ A against peft's own merge_and_unload, the
streaming order, peft's adapter file names, and errors that name the incomplete layer."""
import pytest
import torch

from verl.utils.checkpoint.lora_weights import (adapter_state, hf_base_name, merge_into_hf_state, merge_lora_weights,
                                                scaling_of)


@pytest.fixture(scope="module")
def peft_model(tiny_model_dir):
    """The tiny model with rank-4 adapters on q/v and random (non-zero) A and B."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.normal_(0, 0.2)
    return model


def _peft_merged(model) -> dict:
    import copy

    return copy.deepcopy(model).merge_and_unload().state_dict()


def test_streamed_merge_equals_peft_merge_and_unload(peft_model):
    reference = _peft_merged(peft_model)
    merged = dict(merge_lora_weights(peft_model.state_dict().items(), scaling=12 / 4))
    assert merged.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(merged[name], tensor, atol=1e-6, rtol=0, msg=name)


def test_merge_into_base_weights_from_peft_file_names(peft_model, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    adapters = adapter_state(peft_model.named_parameters())
    assert all(k.startswith("base_model.model.") and ".default." not in k for k in adapters)  # peft's file names
    merged = merge_into_hf_state(base, adapters, scaling_of({"r": 4, "lora_alpha": 12}))
    for name, tensor in _peft_merged(peft_model).items():
        torch.testing.assert_close(merged[name], tensor, atol=1e-6, rtol=0, msg=name)


def test_names_and_incomplete_layers():
    assert hf_base_name("base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight") == \
        "model.layers.0.self_attn.q_proj.weight"
    w, a = torch.zeros(3, 2), torch.zeros(1, 2)
    stream = [("base_model.model.x.q_proj.base_layer.weight", w), ("base_model.model.x.q_proj.lora_A.default.weight", a)]
    with pytest.raises(ValueError, match=r"x.q_proj': \['A', 'W'\]"):
        list(merge_lora_weights(stream, 1.0))
    with pytest.raises(ValueError, match="only one adapter named 'default'"):
        list(merge_lora_weights([("m.q.lora_A.other.weight", a)], 1.0))
    with pytest.raises(ValueError, match="the base model has no weight x.k_proj.weight"):
        merge_into_hf_state({}, {"x.k_proj.lora_A.weight": a, "x.k_proj.lora_B.weight": torch.zeros(3, 1)}, 1.0)
    with pytest.raises(ValueError, match="rsLoRA"):
        scaling_of({"r": 4, "lora_alpha": 8, "use_rslora": True})
