"""Prompt templates that turn a shopper's request into chat messages for the policy LLM.

``sparse`` asks for a keyword query for a BM25 engine; ``dense`` asks for a short pseudo-review
of the ideal product for an embedding retriever. Both ask for the reasoning inside
``<think></think>`` and the final answer as JSON ``{"query": "..."}`` inside ``<answer></answer>``,
which is what the reward function parses. Users add their own with :func:`register_template`.
"""
from __future__ import annotations

REQUEST_SLOT = "{request}"

_SPARSE = """A shopper wrote the request below. Your query will be run against a BM25 keyword \
search engine over the titles and descriptions of an online store's products, and the aim is to \
put the product the shopper wants at the top of the results.

Request: {request}

Decide which words name the product itself (its type, brand, material, color, size and other \
features) and which are background or mention other products, and put that reasoning inside \
<think> </think>. Then write a short keyword query made of the product's words and give it as \
JSON inside answer tags, for example <answer>{"query": "wireless ergonomic keyboard black"}</answer>."""

_DENSE = """A shopper wrote the request below. Your text will be embedded by a dense retriever \
and compared with the embeddings of an online store's product descriptions, and the aim is to \
put the product the shopper wants at the top of the results.

Request: {request}

Think about what the ideal product is (its type, brand, material, color, size and other \
features) and put that reasoning inside <think> </think>. Then write a short review, two or three \
sentences, as a happy buyer of that ideal product would write it, and give it as JSON inside \
answer tags, for example <answer>{"query": "This ergonomic wireless keyboard ..."}</answer>."""

PROMPT_TEMPLATES: dict[str, str] = {"sparse": _SPARSE, "dense": _DENSE}


def register_template(name: str, text: str) -> None:
    """Add a user template; ``text`` must contain the ``{request}`` slot once."""
    if text.count(REQUEST_SLOT) != 1:
        raise ValueError(f"template {name!r} must contain {REQUEST_SLOT} exactly once")
    PROMPT_TEMPLATES[name] = text


def build_prompt(request: str, template: str = "sparse") -> list[dict[str, str]]:
    """Chat messages ``[{"role": "user", "content": ...}]`` asking for a query for ``request``."""
    if template not in PROMPT_TEMPLATES:
        raise KeyError(f"unknown prompt template {template!r}; known: {sorted(PROMPT_TEMPLATES)}")
    content = PROMPT_TEMPLATES[template].replace(REQUEST_SLOT, request.strip())
    return [{"role": "user", "content": content}]
