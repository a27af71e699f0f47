"""An offline product catalog with Amazon-C4-like requests, written in the real raw format.

    python -m recr1.data.synthetic --out data/synthetic/raw --items 20000 --requests 5000 --seed 0

Writes ``test.csv`` (qid, query, item_id, user_id, ori_rating, ori_review) and
``sampled_item_metadata_1M.jsonl`` (item_id, category, metadata), so
``python -m recr1.data.amazon_c4 --raw-dir`` runs on it unchanged, plus ``oracle_queries.jsonl``
(qid, item_id, query, attributes): the request's distinguishing attribute words, the query an
ideal rewriter would write.

Each item is a product type of one of ten categories with a brand, two features, a material, a
color and a size. Each request is a 40-120 word first-person need that names the target's type
and two to four of its attributes among generic filler, often with another product that is not
the one wanted: BM25 on the raw request is mediocre, the oracle query is much better
(measured by scripts/data/measure_synthetic_difficulty.py; see data/README.md).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import string
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from tqdm import tqdm

from recr1.data.item_pool import ITEM_FILE
from recr1.data.synthetic_vocab import (
    CATEGORIES, COLORS, DESCRIPTION_FILLER, DESCRIPTION_SLOTS, REQUEST_ATTRIBUTE_SENTENCES, REQUEST_DISTRACTORS,
    REQUEST_FILLER, REQUEST_NOISE, REQUEST_OPENINGS, REQUEST_USE_SENTENCES, REVIEW_PHRASES, SIZES, WHO, CategoryVocab,
)

REQUEST_FILE = "test.csv"
ORACLE_FILE = "oracle_queries.jsonl"
REQUEST_COLUMNS = ("qid", "query", "item_id", "user_id", "ori_rating", "ori_review")

MIN_REQUEST_WORDS, MAX_REQUEST_WORDS = 40, 120
N_MENTIONED_WEIGHTS = {2: 0.1, 3: 0.5, 4: 0.4}  # how many attributes besides the type a request names
# Which attributes a request names: the weak ones (a second feature, the size) less often.
MENTION_WEIGHTS = {"brand": 3.0, "color": 3.0, "material": 3.0, "feature": 2.0, "feature2": 1.0, "size": 1.0}
P_DISTRACTOR = 0.7
P_DISTRACTOR_SAME_TYPE = 0.5
P_USE_SENTENCE = 0.5
N_NOISE_WEIGHTS = {1: 0.2, 2: 0.4, 3: 0.3, 4: 0.1}  # context sentences naming other products' words

_ID_CHARS = string.ascii_uppercase + string.digits
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _fix_articles(text: str) -> str:
    """``a ergonomic`` -> ``an ergonomic``."""
    return _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + "n ", text)


@dataclass(frozen=True)
class SyntheticItem:
    """One generated product and its slot values."""

    item_id: str
    category: CategoryVocab
    type: str
    brand: str
    features: tuple[str, str]
    material: str
    color: str
    size: str
    uses: tuple[str, str]

    def attributes(self) -> dict[str, str]:
        """The attribute slots a request may mention (``feature`` and ``feature2`` separately)."""
        return {"brand": self.brand, "color": self.color, "material": self.material,
                "feature": self.features[0], "feature2": self.features[1], "size": self.size}

    def title(self) -> str:
        f1, f2 = (f.capitalize() for f in self.features)
        return (f"{self.brand} {f1} {f2} {self.material.capitalize()} {self.type.capitalize()}, "
                f"{self.color.capitalize()}, {self.size.capitalize()}")

    def slots(self) -> dict[str, str]:
        return {"type": self.type, "Brand": self.brand, "material": self.material, "color": self.color,
                "feature": self.features[0], "feature2": self.features[1], "size": self.size,
                "use": self.uses[0], "use2": self.uses[1]}


def _new_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        item_id = "B0" + "".join(rng.choices(_ID_CHARS, k=8))
        if item_id not in taken:
            taken.add(item_id)
            return item_id


def make_items(n_items: int, rng: random.Random) -> list[SyntheticItem]:
    """``n_items`` products spread evenly over the categories (category of item i is i mod 10)."""
    taken: set[str] = set()
    items = []
    for i in range(n_items):
        cat = CATEGORIES[i % len(CATEGORIES)]
        items.append(SyntheticItem(
            item_id=_new_id(rng, taken), category=cat, type=rng.choice(cat.types), brand=rng.choice(cat.brands),
            features=tuple(rng.sample(cat.features, 2)), material=rng.choice(cat.materials),
            color=rng.choice(COLORS), size=rng.choice(SIZES), uses=tuple(rng.sample(cat.uses, 2)),
        ))
    return items


def item_metadata(item: SyntheticItem, rng: random.Random) -> str:
    """Title followed by a description, as one string like the released item pool's ``metadata``."""
    slots = item.slots()
    sentences = [s.format(**slots) for s in DESCRIPTION_SLOTS] + rng.sample(DESCRIPTION_FILLER, 2)
    rng.shuffle(sentences)
    return _fix_articles(f"{item.title()}. " + " ".join(sentences))


def _who(rng: random.Random) -> str:
    return rng.choice(WHO).replace("_", " ")


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)


def make_request(
    item: SyntheticItem, same_category: list[SyntheticItem], same_type: list[SyntheticItem], rng: random.Random
) -> tuple[str, str, dict[str, str]]:
    """A request for ``item``: ``(text, oracle_query, mentioned_attributes)``.

    ``same_category`` / ``same_type`` are the items a distractor mention may be drawn from.
    """
    n_mentioned = rng.choices(list(N_MENTIONED_WEIGHTS), weights=list(N_MENTIONED_WEIGHTS.values()))[0]
    attributes = item.attributes()
    kinds = list(MENTION_WEIGHTS)
    chosen: list[str] = []
    while len(chosen) < n_mentioned:
        kind = rng.choices(kinds, weights=[MENTION_WEIGHTS[k] for k in kinds])[0]
        if kind not in chosen:
            chosen.append(kind)
    mentioned = {kind: attributes[kind] for kind in chosen}

    opening = rng.choice(REQUEST_OPENINGS).format(type=item.type, who=_who(rng))
    body = [rng.choice(REQUEST_ATTRIBUTE_SENTENCES[kind.rstrip("2")]).format(value=value)
            for kind, value in mentioned.items()]
    optional = []
    if rng.random() < P_USE_SENTENCE:
        use = rng.choice(item.uses) if rng.random() < 0.5 else rng.choice(item.category.uses)
        optional.append(rng.choice(REQUEST_USE_SENTENCES).format(use=use))
    if rng.random() < P_DISTRACTOR:
        pool = same_type if rng.random() < P_DISTRACTOR_SAME_TYPE and len(same_type) > 1 else same_category
        other = rng.choice(pool)
        if other.item_id != item.item_id:
            optional.append(rng.choice(REQUEST_DISTRACTORS).format(**other.slots()))
    n_noise = rng.choices(list(N_NOISE_WEIGHTS), weights=list(N_NOISE_WEIGHTS.values()))[0]
    for template in rng.sample(REQUEST_NOISE, n_noise):
        optional.append(template.format(**_noise_slots(item, rng)))
    target_words = rng.randint(MIN_REQUEST_WORDS + 5, MAX_REQUEST_WORDS - 10)
    fillers = rng.sample(REQUEST_FILLER, len(REQUEST_FILLER))
    have = _words([opening] + body)
    for n, sentence in enumerate(optional + fillers):
        if have >= target_words and n >= len(optional):
            break
        words = len(sentence.split())
        if have + words <= MAX_REQUEST_WORDS:
            body.append(sentence)
            have += words
    rng.shuffle(body)
    text = _fix_articles(" ".join([opening] + body))
    oracle = " ".join([v.lower() for v in mentioned.values()] + [item.type])
    return text, oracle, mentioned


def _noise_slots(item: SyntheticItem, rng: random.Random) -> dict[str, str]:
    """Slot values from the words of ``item``'s category (half the time another category), none of them ``item``'s."""
    own = set(item.slots().values()) | set(item.features) | set(item.uses)
    pool_category = item.category if rng.random() < 0.5 else rng.choice(CATEGORIES)
    values = {
        "type": [t for t in pool_category.types if t != item.type],
        "Brand": [b for b in pool_category.brands if b != item.brand],
        "material": [m for m in pool_category.materials if m not in own],
        "feature": [f for f in pool_category.features if f not in own],
        "use": [u for u in pool_category.uses if u not in own],
        "color": [c for c in COLORS if c != item.color],
        "size": [z for z in SIZES if z != item.size],
    }
    slots = {key: rng.choice(options) for key, options in values.items()}
    slots["color2"] = rng.choice([c for c in values["color"] if c != slots["color"]])
    return slots


def _review(item: SyntheticItem, rating: int) -> str:
    return f"{REVIEW_PHRASES[rating]} The {item.color} {item.type} from {item.brand} works well for {item.uses[0]}."


def generate_catalog(out_dir: str, n_items: int, n_requests: int, seed: int = 0) -> dict:
    """Write the raw files of a synthetic catalog into ``out_dir``; returns a small summary.

    The items depend only on ``(n_items, seed)``, the requests on ``(n_items, n_requests, seed)``.
    """
    if n_items < len(CATEGORIES):
        raise ValueError(f"--items must be at least {len(CATEGORIES)} (one per category), got {n_items}")
    if n_requests < 0:
        raise ValueError(f"--requests must be >= 0, got {n_requests}")
    os.makedirs(out_dir, exist_ok=True)
    item_rng = random.Random(f"{seed}-items")
    items = make_items(n_items, item_rng)
    with open(os.path.join(out_dir, ITEM_FILE), "w", encoding="utf-8") as f:
        for item in tqdm(items, desc="write items", unit=" items", mininterval=1.0):
            row = {"item_id": item.item_id, "category": item.category.name, "metadata": item_metadata(item, item_rng)}
            f.write(json.dumps(row) + "\n")

    by_category: dict[str, list[SyntheticItem]] = defaultdict(list)
    by_type: dict[tuple[str, str], list[SyntheticItem]] = defaultdict(list)
    for item in items:
        by_category[item.category.name].append(item)
        by_type[item.category.name, item.type].append(item)

    request_rng = random.Random(f"{seed}-requests")
    lengths = []
    with open(os.path.join(out_dir, REQUEST_FILE), "w", encoding="utf-8", newline="") as req_f, \
            open(os.path.join(out_dir, ORACLE_FILE), "w", encoding="utf-8") as oracle_f:
        writer = csv.writer(req_f)
        writer.writerow(REQUEST_COLUMNS)
        for qid in tqdm(range(n_requests), desc="write requests", unit=" requests", mininterval=1.0):
            item = request_rng.choice(items)
            text, oracle, mentioned = make_request(
                item, by_category[item.category.name], by_type[item.category.name, item.type], request_rng)
            rating = request_rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 2, 6, 10))[0]
            user_id = "A" + "".join(request_rng.choices(_ID_CHARS, k=27))
            writer.writerow((qid, text, item.item_id, user_id, rating, _review(item, rating)))
            oracle_f.write(json.dumps({"qid": qid, "item_id": item.item_id, "query": oracle,
                                       "attributes": mentioned}) + "\n")
            lengths.append(len(text.split()))
    return {"items": n_items, "requests": n_requests, "categories": [c.name for c in CATEGORIES],
            "request_words": (min(lengths), max(lengths)) if lengths else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.synthetic",
                                     description="Write an offline Amazon-C4-format synthetic catalog.")
    parser.add_argument("--out", required=True, help="output folder for the raw files")
    parser.add_argument("--items", type=int, default=20000, help="number of products")
    parser.add_argument("--requests", type=int, default=5000, help="number of requests")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        summary = generate_catalog(args.out, args.items, args.requests, args.seed)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {summary['items']} items and {summary['requests']} requests to {args.out} "
          f"in {time.perf_counter() - start:.1f} s (request words {summary['request_words']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
