"""Rec-R1: train an LLM to write product-search queries against a retrieval reward."""
__version__ = "0.1.0"
