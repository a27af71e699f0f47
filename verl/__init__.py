"""verl-style RL framework: DataProto, single controller, FSDP2 workers, PPO/GRPO trainer."""
__version__ = "0.1.0"
