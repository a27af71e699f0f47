"""Prompt templates that turn a shopper's request into chat messages for the policy LLM.

``sparse`` asks for a keyword query for a BM25 engine; ``dense`` asks for a short pseudo-review
of the ideal product for an embedding retriever; ``seqrec`` asks for a keyword query for the next item of a
purchase history (the "request" is :func:`history_text`). All ask for the reasoning inside
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

# Sequential recommendation (Amazon Reviews 2023): the "request" is the user's purchase history, one item title
# a line (see history_text).
_SEQREC = """A customer bought the items below, oldest first. Your query will be run against a BM25 keyword \
search engine over the titles, features and descriptions of an online store's products, and the aim is to put \
the item this customer buys next at the top of the results.

Purchase history:
{request}

Decide what the customer keeps coming back to (brands, product lines, materials, colors, styles, needs) and \
what was a one-off, and put that reasoning inside <think> </think>. Then write a short keyword query for the \
item they are likely to buy next and give it as JSON inside answer tags, for example \
<answer>{"query": "vitamin c serum fragrance free"}</answer>."""

PROMPT_TEMPLATES: dict[str, str] = {"sparse": _SPARSE, "dense": _DENSE, "seqrec": _SEQREC}


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


def history_text(titles: list[str]) -> str:
    """A purchase history as the ``seqrec`` template shows it: ``Item 1: <title>`` a line, oldest first (Rec-R1's
    layout); an item without a title shows as ``(no title)``."""
    return "\n".join(f"Item {i}: {title.strip() or '(no title)'}" for i, title in enumerate(titles, start=1))
