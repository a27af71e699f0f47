"""Rec-R1's split of Amazon-C4 requests: held-out category domains for test, a seeded val split.

Each request is bucketed by its target item's category. Requests whose category is one of the
test domains form the test split (data source ``amazon_c4_<Domain>_test``); the rest are shuffled
with the seed, the last ``val_size`` become ``amazon_c4_val`` and the others ``amazon_c4_train``.

The released item pool names categories by one short word ("Games", "Baby", "Office", "Sports",
...), while the test domains are given by their Amazon names ("Video_Games", "Baby_Products",
...): a domain matches a category with the same normalized name or one of its known short aliases.
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TEST_DOMAINS = ("Video_Games", "Baby_Products", "Office_Products", "Sports_and_Outdoors")

# Short category names that the released Amazon-C4 item pool uses for Amazon top-level categories
# (the four test domains are the ones Rec-R1 evaluates on). Unknown domains match by name only.
CATEGORY_ALIASES: dict[str, tuple[str, ...]] = {
    "video_games": ("games",),
    "baby_products": ("baby",),
    "office_products": ("office",),
    "sports_and_outdoors": ("sports",),
    "home_and_kitchen": ("home",),
    "clothing_shoes_and_jewelry": ("clothing",),
    "tools_and_home_improvement": ("tools",),
}

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_category(name: str) -> str:
    """``"Sports & Outdoors"`` -> ``"sports_and_outdoors"``: lower case, ``&`` as ``and``, ``_`` separators."""
    name = name.strip().lower().replace("&", " and ")
    return _NON_ALNUM.sub("_", name).strip("_")


def domain_matcher(test_domains: Sequence[str]) -> dict[str, str]:
    """Map every normalized category name (full or alias) that belongs to a test domain to that domain."""
    lookup: dict[str, str] = {}
    for domain in test_domains:
        key = normalize_category(domain)
        for name in (key, *CATEGORY_ALIASES.get(key, ())):
            if name in lookup and lookup[name] != domain:
                raise ValueError(f"test domains {lookup[name]!r} and {domain!r} both match category {name!r}")
            lookup[name] = domain
    return lookup


def test_data_source(domain: str, prefix: str = "amazon_c4") -> str:
    """``amazon_c4_<Domain>_test``; the domain keeps the spelling the user gave."""
    return f"{prefix}_{domain}_test"


@dataclass(frozen=True)
class Request:
    """One request: ``line`` in the raw file, ``qid``, request ``text``, target ids, target category."""

    line: int
    qid: str
    text: str
    target: tuple[str, ...]
    category: str


def split_requests(
    requests: Sequence[Request],
    test_domains: Sequence[str],
    val_size: int,
    seed: int,
    prefix: str = "amazon_c4",
) -> dict[str, list[tuple[str, Request]]]:
    """Split requests into ``{"train", "val", "test"}`` lists of ``(data_source, request)``.

    Test keeps file order; train and val come from one seeded shuffle of the remaining requests.
    Raises ValueError if ``val_size`` leaves no training request.
    """
    if val_size < 0:
        raise ValueError(f"val_size must be >= 0, got {val_size}")
    lookup = domain_matcher(test_domains)
    test: list[tuple[str, Request]] = []
    rest: list[Request] = []
    for req in requests:
        domain = lookup.get(normalize_category(req.category))
        if domain is None:
            rest.append(req)
        else:
            test.append((test_data_source(domain, prefix), req))
    if rest and val_size >= len(rest):
        raise ValueError(
            f"--val-size {val_size} leaves no training request: only {len(rest)} request(s) are outside "
            f"the test domains; lower --val-size"
        )
    random.Random(seed).shuffle(rest)
    n_train = len(rest) - val_size
    return {
        "train": [(f"{prefix}_train", r) for r in rest[:n_train]],
        "val": [(f"{prefix}_val", r) for r in rest[n_train:]],
        "test": test,
    }
