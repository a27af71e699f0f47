"""Loads this folder's jsonl files for the recr1_smoke tasks, wherever the repository is (a relative data_files in
the YAML would be read from the current directory instead)."""
import os

import datasets

HERE = os.path.dirname(os.path.abspath(__file__))


def load_multiple_choice(**_metadata):
    """The multiple-choice questions as a DatasetDict with one split, ``test``."""
    return datasets.load_dataset("json", data_files={"test": os.path.join(HERE, "multiple_choice.jsonl")})


def load_arithmetic(**_metadata):
    """The one-line sums as a DatasetDict with one split, ``test``."""
    return datasets.load_dataset("json", data_files={"test": os.path.join(HERE, "arithmetic.jsonl")})
