"""verl/utils/dataset/sft_dataset.py: prompt + response + EOS, loss mask on the response only."""
import pandas as pd
import pytest
from omegaconf import OmegaConf

from verl.utils.dataset import SFTDataset


def test_loss_mask_covers_the_response_and_eos(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    path = tmp_path / "sft.parquet"
    pd.DataFrame({"prompt": ["find red shoes"], "response": ["red running shoes"]}).to_parquet(path)
    cfg = OmegaConf.create({"prompt_key": "prompt", "response_key": "response", "max_length": 32,
                            "truncation": "error"})
    item = SFTDataset(str(path), tok, cfg)[0]
    ids, mask, loss_mask = item["input_ids"], item["attention_mask"], item["loss_mask"]
    n = int(mask.sum())
    assert mask[:n].all() and not mask[n:].any()  # right-padded
    response_ids = ids[loss_mask.bool()].tolist()
    assert tok.decode(response_ids) == "red running shoes" + tok.eos_token
    prompt_text = tok.decode(ids[: n - len(response_ids)])
    assert prompt_text.endswith("find red shoes<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="row 0: prompt \\+ response is .* > data.max_length=8"):
        SFTDataset(str(path), tok, OmegaConf.merge(cfg, {"max_length": 8}))
