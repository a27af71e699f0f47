"""An offline Amazon Reviews 2023 category: users with tastes, written in the real raw format.

    python -m recr1.data.synthetic_reviews --out data/amazon_review/raw --users 2000 --items 3000 --seed 0 \\
        [--category Synthetic_Store]

Writes ``<Category>.jsonl`` (reviews: rating, title, text, images, asin, parent_asin, user_id, timestamp in ms,
helpful_vote, verified_purchase, in no particular order, like the released files) and ``meta_<Category>.jsonl``
(items: main_category, title, average_rating, rating_number, features, description, price, images, videos, store,
categories, details, parent_asin, bought_together), so ``python -m recr1.data.amazon_review`` runs on them
unchanged, plus ``user_tastes.jsonl`` (user_id, taste, query): the words an ideal next-item query would hold.

The catalog is the synthetic product vocabulary of :mod:`recr1.data.synthetic` (``--items`` background
products nobody needs to buy, plus the products users buy). Each user has a taste: one category and a brand,
a color and a material of it. Each purchase is a product of that category whose brand, color and material
follow the taste most of the time (its type, features and size do not), now and then an already sold
product of the same taste, rarely a repeat. So the next item is predictable from the words the history's
titles share, and the last title alone (its type, features, size) is a weaker query.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from recr1.data.synthetic import SyntheticItem, _fix_articles, _new_id, item_metadata, make_items
from recr1.data.synthetic_vocab import CATEGORIES, COLORS, REVIEW_PHRASES, SIZES, CategoryVocab

TASTE_FILE = "user_tastes.jsonl"
DEFAULT_CATEGORY = "Synthetic_Store"
MIN_PURCHASES, MAX_PURCHASES = 4, 10
P_KEEP = {"brand": 0.85, "color": 0.8, "material": 0.8}  # chance a purchase follows each taste slot
P_SOLD_BEFORE = 0.25  # a purchase is a product of the same taste that someone already bought
P_REPEAT = 0.04       # a user buys again something they had bought (the prep keeps the first purchase)
START_MS = 1_500_000_000_000
_USER_CHARS = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Taste:
    """What a user keeps buying: one category and a brand, a color and a material of it."""

    category: CategoryVocab
    brand: str
    color: str
    material: str

    def words(self) -> dict[str, str]:
        return {"brand": self.brand, "color": self.color, "material": self.material}


def draw_taste(rng: random.Random) -> Taste:
    cat = rng.choice(CATEGORIES)
    return Taste(cat, rng.choice(cat.brands), rng.choice(COLORS), rng.choice(cat.materials))


def purchase(taste: Taste, rng: random.Random, taken: set[str]) -> SyntheticItem:
    """A new product of the taste's category, following each taste slot with probability P_KEEP."""
    cat = taste.category
    keep = {slot: rng.random() < p for slot, p in P_KEEP.items()}
    return SyntheticItem(
        item_id=_new_id(rng, taken), category=cat, type=rng.choice(cat.types),
        brand=taste.brand if keep["brand"] else rng.choice(cat.brands),
        features=tuple(rng.sample(cat.features, 2)),
        material=taste.material if keep["material"] else rng.choice(cat.materials),
        color=taste.color if keep["color"] else rng.choice(COLORS), size=rng.choice(SIZES),
        uses=tuple(rng.sample(cat.uses, 2)),
    )


def meta_row(item: SyntheticItem, rng: random.Random) -> dict:
    """The item as a meta_<Category>.jsonl row (real field names; description from the catalog's sentences)."""
    title, _, description = item_metadata(item, rng).partition(". ")
    f1, f2 = item.features
    return {
        "main_category": item.category.domain.replace("_", " "), "title": title,
        "average_rating": round(rng.uniform(3.0, 5.0), 1), "rating_number": rng.randint(1, 500),
        "features": [_fix_articles(f"{f1.capitalize()} and {f2} design"), f"Size: {item.size}"],
        "description": [description], "price": round(rng.uniform(5, 120), 2), "images": [], "videos": [],
        "store": item.brand, "categories": [item.category.domain.replace("_", " "), item.type.capitalize()],
        "details": {"Material": item.material.capitalize(), "Color": item.color.capitalize()},
        "parent_asin": item.item_id, "bought_together": None,
    }


def review_row(item: SyntheticItem, user_id: str, timestamp: int, rng: random.Random) -> dict:
    rating = rng.choices((1, 2, 3, 4, 5), weights=(1, 1, 2, 6, 10))[0]
    return {
        "rating": float(rating), "title": REVIEW_PHRASES[rating].rstrip("."),
        "text": f"{REVIEW_PHRASES[rating]} The {item.color} {item.type} from {item.brand} works well for "
                f"{item.uses[0]}.",
        "images": [], "asin": item.item_id, "parent_asin": item.item_id, "user_id": user_id,
        "timestamp": timestamp, "helpful_vote": rng.choice((0, 0, 0, 1, 2, 5)), "verified_purchase": rng.random() < 0.9,
    }


def generate_reviews(out_dir: str, n_users: int, n_items: int, seed: int = 0,
                     category: str = DEFAULT_CATEGORY) -> dict:
    """Write the raw files of a synthetic category into ``out_dir``; returns a small summary.

    Deterministic in ``(n_users, n_items, seed)``.
    """
    if n_users < 1:
        raise ValueError(f"--users must be >= 1, got {n_users}")
    if n_items < len(CATEGORIES):
        raise ValueError(f"--items must be at least {len(CATEGORIES)} (one per category), got {n_items}")
    rng = random.Random(f"{seed}-reviews")
    items = make_items(n_items, random.Random(f"{seed}-items"))
    taken = {it.item_id for it in items}
    sold: dict[Taste, list[SyntheticItem]] = defaultdict(list)
    reviews, tastes = [], []
    for _ in range(n_users):
        user_id = "A" + "".join(rng.choices(_USER_CHARS, k=27))
        taste = draw_taste(rng)
        bought: list[SyntheticItem] = []
        for _ in range(rng.randint(MIN_PURCHASES, MAX_PURCHASES)):
            if bought and rng.random() < P_REPEAT:
                bought.append(rng.choice(bought))
            elif sold[taste] and rng.random() < P_SOLD_BEFORE:
                bought.append(rng.choice(sold[taste]))
            else:
                item = purchase(taste, rng, taken)
                items.append(item)
                sold[taste].append(item)
                bought.append(item)
        timestamp = START_MS + rng.randint(0, 10**11)
        for item in bought:
            timestamp += rng.choice((0, rng.randint(3_600_000, 90 * 86_400_000)))  # now and then a tie
            reviews.append(review_row(item, user_id, timestamp, rng))
        words = taste.words()
        tastes.append({"user_id": user_id, "taste": {"category": taste.category.name, **words},
                       "query": " ".join(words[k].lower() for k in ("brand", "color", "material"))})
    rng.shuffle(reviews)
    os.makedirs(out_dir, exist_ok=True)
    meta_rng = random.Random(f"{seed}-meta")
    _write_jsonl(os.path.join(out_dir, f"meta_{category}.jsonl"), (meta_row(it, meta_rng) for it in items))
    _write_jsonl(os.path.join(out_dir, f"{category}.jsonl"), reviews)
    _write_jsonl(os.path.join(out_dir, TASTE_FILE), tastes)
    return {"category": category, "users": n_users, "items": len(items), "reviews": len(reviews)}


def _write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recr1.data.synthetic_reviews",
                                     description="Write an offline Amazon-Reviews-2023-format synthetic category.")
    parser.add_argument("--out", required=True, help="output folder for the raw files")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=3000, help="background products (bought ones come on top)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--category", default=DEFAULT_CATEGORY, help="the files' stem (<Category>.jsonl)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        summary = generate_reviews(args.out, args.users, args.items, args.seed, args.category)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {summary['reviews']} reviews of {summary['users']} users over {summary['items']} items "
          f"({args.category}) to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
