"""``model.external_lib``: a module that registers a custom architecture with transformers' Auto classes is imported
before the model is loaded (actor and value model), and a module that cannot be imported is named with its key."""
import json
import os
import shutil
import textwrap

import pytest
from omegaconf import OmegaConf

from verl.utils.fsdp_utils import build_device_mesh
from verl.workers.sharding import build_fsdp_causal_lm, build_fsdp_value_model

MODEL_TYPE = "verl_test_custom_qwen2"

CUSTOM_LIB = f'''
"""Registers {MODEL_TYPE!r} (a renamed Qwen2) with transformers' Auto classes, as a user's external_lib would."""
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification, Qwen2Config,
                          Qwen2ForCausalLM, Qwen2ForTokenClassification, Qwen2Model)


class CustomConfig(Qwen2Config):
    model_type = {MODEL_TYPE!r}


class CustomModel(Qwen2Model):
    config_class = CustomConfig


class CustomForCausalLM(Qwen2ForCausalLM):
    config_class = CustomConfig


class CustomForTokenClassification(Qwen2ForTokenClassification):
    config_class = CustomConfig


AutoConfig.register({MODEL_TYPE!r}, CustomConfig)
AutoModel.register(CustomConfig, CustomModel)
AutoModelForCausalLM.register(CustomConfig, CustomForCausalLM)
AutoModelForTokenClassification.register(CustomConfig, CustomForTokenClassification)
'''


@pytest.fixture()
def custom_model_dir(tiny_model_dir, tmp_path, monkeypatch):
    """The tiny model saved under an architecture transformers does not know, and the lib that registers it (on
    sys.path as ``custom_arch_lib``, not imported yet)."""
    model_dir = tmp_path / "custom_model"
    shutil.copytree(tiny_model_dir, model_dir)
    with open(model_dir / "config.json") as f:
        config = json.load(f)
    config.update(model_type=MODEL_TYPE, architectures=["CustomForCausalLM"])
    with open(model_dir / "config.json", "w") as f:
        json.dump(config, f)
    lib_dir = tmp_path / "lib"
    lib_dir.mkdir()
    (lib_dir / "custom_arch_lib.py").write_text(textwrap.dedent(CUSTOM_LIB))
    monkeypatch.syspath_prepend(str(lib_dir))
    return str(model_dir)


def test_unknown_architecture_needs_the_external_lib(cpu_group, custom_model_dir):
    import sys

    assert "custom_arch_lib" not in sys.modules
    with pytest.raises((ValueError, KeyError)):
        build_fsdp_causal_lm(OmegaConf.create({"path": custom_model_dir}), None, build_device_mesh("cpu"), "cpu")


def test_external_lib_is_imported_before_the_model_is_loaded(cpu_group, custom_model_dir):
    model_cfg = OmegaConf.create({"path": custom_model_dir, "external_lib": "custom_arch_lib"})
    actor = build_fsdp_causal_lm(model_cfg, None, build_device_mesh("cpu"), "cpu")
    critic = build_fsdp_value_model(model_cfg, None, build_device_mesh("cpu"), "cpu")
    assert type(actor).__name__ == "CustomForCausalLM" and actor.config.model_type == MODEL_TYPE
    assert type(critic).__name__ == "CustomForTokenClassification"


def test_external_lib_that_cannot_be_imported_is_named(cpu_group, tiny_model_dir):
    model_cfg = OmegaConf.create({"path": tiny_model_dir, "external_lib": "no_such_module_for_verl"})
    with pytest.raises(ImportError) as info:
        build_fsdp_causal_lm(model_cfg, None, build_device_mesh("cpu"), "cpu")
    assert "model.external_lib='no_such_module_for_verl'" in str(info.value)


def test_the_tokenizer_load_imports_external_lib_first(custom_model_dir, monkeypatch):
    """A lib may register a tokenizer class too: workers and driver load the tokenizer only after importing it."""
    import sys

    from verl.workers.sharding import load_tokenizer

    monkeypatch.delitem(sys.modules, "custom_arch_lib", raising=False)
    load_tokenizer(custom_model_dir, external_lib="custom_arch_lib")
    assert "custom_arch_lib" in sys.modules
    with pytest.raises(ImportError, match="critic.model.external_lib='no_such_lib'"):
        load_tokenizer(custom_model_dir, external_lib="no_such_lib", external_lib_key="critic.model.external_lib")
