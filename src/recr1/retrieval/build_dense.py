"""Build a FAISS dense index of the catalog.

    python -m recr1.retrieval.build_dense --corpus data/corpus --index data/index/dense \
        [--encoder NAME_OR_PATH] [--index-type flat|hnsw] [--batch-size 64] [--device cpu]

Items are encoded with the encoder (default: the bundled all-MiniLM-L6-v2; BLaIR
``hyp1231/blair-roberta-base`` or any HF encoder by name/path), L2-normalized, and stored in an
inner-product index: exact ``flat`` or ``hnsw`` (M=32, efConstruction=200, like Rec-R1).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from recr1.retrieval.corpus import iter_corpus
from recr1.retrieval.dense_index import INDEX_TYPES, make_faiss_index, save_dense_index
from recr1.retrieval.encoder import POOLINGS, TextEncoder


def build_dense_index(
    corpus: str | os.PathLike,
    index: str | os.PathLike,
    encoder: str | None = None,
    index_type: str = "hnsw",
    pooling: str = "auto",
    batch_size: int = 64,
    max_length: int | None = None,
    device: str | None = None,
    overwrite: bool = False,
) -> int:
    """Encode every corpus row and write a dense index folder. Returns the number of items."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type={index_type!r}; expected one of {list(INDEX_TYPES)}")
    index = os.fspath(index)
    if os.path.exists(index) and os.listdir(index):
        if not overwrite:
            raise FileExistsError(f"index folder {index} is not empty (pass --overwrite to replace it)")
        shutil.rmtree(index)
    rows = list(iter_corpus(corpus))
    if not rows:
        raise ValueError(f"corpus {corpus} has no rows")
    doc_ids = [doc_id for doc_id, _ in rows]
    texts = [contents for _, contents in rows]
    print(f"[build_dense] {len(rows)} items from {corpus}")

    t0 = time.time()
    text_encoder = TextEncoder(encoder, pooling=pooling, max_length=max_length, batch_size=batch_size, device=device)
    vectors = text_encoder.encode(texts, show_progress=True, desc="encoding items")
    faiss_index = make_faiss_index(vectors, index_type)
    meta = {**text_encoder.describe(), "index_type": index_type, "num_items": len(doc_ids)}
    save_dense_index(index, faiss_index, doc_ids, meta)
    print(f"[build_dense] wrote {index_type} index of {len(doc_ids)} items (dim {text_encoder.dim}) to {index} "
          f"in {time.time() - t0:.1f}s")  # fmt: skip
    return len(doc_ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True, help="folder of JSONL files (or one file) with id/contents rows")
    parser.add_argument("--index", required=True, help="output index folder")
    parser.add_argument("--encoder", default=None, help="HF model id or folder (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--index-type", default="hnsw", choices=INDEX_TYPES)
    parser.add_argument("--pooling", default="auto", choices=POOLINGS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=None, help="token limit per item text")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    args = parser.parse_args(argv)
    try:
        build_dense_index(
            args.corpus, args.index, args.encoder, args.index_type, args.pooling,
            args.batch_size, args.max_length, args.device, args.overwrite,
        )  # fmt: skip
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        sys.exit(f"build_dense: {exc}")


if __name__ == "__main__":
    main()
