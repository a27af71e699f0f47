"""The files of a dense index folder and the FAISS calls that make and read them.

    <index>/index.faiss   inner-product FAISS index of L2-normalized item embeddings
    <index>/docids.txt    product id of row i, one a line
    <index>/meta.json     encoder, pooling, max_length, dim, index_type (to encode queries the same way)
"""
from __future__ import annotations

import json
import os

import numpy as np

INDEX_FILE = "index.faiss"
DOCIDS_FILE = "docids.txt"
META_FILE = "meta.json"
INDEX_TYPES = ("flat", "hnsw")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200


def faiss_has_gpu() -> bool:
    """True when faiss-gpu is installed and sees a GPU."""
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def make_faiss_index(vectors: np.ndarray, index_type: str = "hnsw", use_gpu: bool | None = None):
    """An inner-product FAISS index over ``vectors`` (float32 [n, dim], rows already unit-norm).

    ``flat`` is exact; ``hnsw`` uses M=32 and efConstruction=200 (Rec-R1's settings). A flat
    index is built on the GPU when faiss-gpu is available (``use_gpu`` None) and returned on CPU.
    """
    import faiss

    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type={index_type!r}; expected one of {list(INDEX_TYPES)}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(vectors)
        return index
    index = faiss.IndexFlatIP(dim)
    if use_gpu if use_gpu is not None else faiss_has_gpu():
        gpu_index = faiss.index_cpu_to_all_gpus(index)
        gpu_index.add(vectors)
        return faiss.index_gpu_to_cpu(gpu_index)
    index.add(vectors)
    return index


def save_dense_index(folder: str, index, doc_ids: list[str], meta: dict) -> None:
    """Write the three files of a dense index into ``folder``."""
    import faiss

    if index.ntotal != len(doc_ids):
        raise ValueError(f"FAISS index holds {index.ntotal} vectors but {len(doc_ids)} doc ids were given")
    os.makedirs(folder, exist_ok=True)
    faiss.write_index(index, os.path.join(folder, INDEX_FILE))
    with open(os.path.join(folder, DOCIDS_FILE), "w", encoding="utf-8") as f:
        f.write("\n".join(doc_ids) + ("\n" if doc_ids else ""))
    with open(os.path.join(folder, META_FILE), "w") as f:
        json.dump(meta, f, indent=2)


def load_dense_index(folder: str):
    """``(faiss_index, doc_ids, meta)`` from ``folder``; names the missing file when one is absent."""
    import faiss

    for name in (INDEX_FILE, DOCIDS_FILE, META_FILE):
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"dense index {folder} has no {name} (build it with recr1.retrieval.build_dense)")
    index = faiss.read_index(os.path.join(folder, INDEX_FILE))
    with open(os.path.join(folder, DOCIDS_FILE), encoding="utf-8") as f:
        doc_ids = f.read().splitlines()
    with open(os.path.join(folder, META_FILE)) as f:
        meta = json.load(f)
    if index.ntotal != len(doc_ids):
        raise ValueError(f"{folder}: {INDEX_FILE} holds {index.ntotal} vectors but {DOCIDS_FILE} has {len(doc_ids)} ids")
    return index, doc_ids, meta
