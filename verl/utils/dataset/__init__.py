"""Datasets: parquet prompts for RL (RLHFDataset), prompt/response pairs for SFT (SFTDataset)."""
from verl.utils.dataset.resumable_loader import ResumableDataLoader
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.utils.dataset.sft_dataset import SFTDataset

__all__ = ["RLHFDataset", "SFTDataset", "ResumableDataLoader", "collate_fn"]
