"""The demo's prompt template: the request with one line of instruction.

A 0.5M-parameter policy cannot read the ~100-word instructions of the ``sparse`` template; they would only
triple the tokens every forward pass pays for. The demo registers this template with
:func:`recr1.data.prompts.register_template` and prepares its data through the same ``prepare`` as the real
data (``--set prompt_template=sparse`` uses the full template instead).
"""
from __future__ import annotations

from recr1.data.prompts import PROMPT_TEMPLATES, register_template

COMPACT = "compact"
COMPACT_TEMPLATE = "Write a keyword query that finds the product this shopper wants.\nRequest: {request}"


def ensure_demo_templates() -> None:
    """Register the demo's templates (idempotent)."""
    if COMPACT not in PROMPT_TEMPLATES:
        register_template(COMPACT, COMPACT_TEMPLATE)
