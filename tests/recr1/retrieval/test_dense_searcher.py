"""Dense retrieval over a real FAISS index of the tiny catalog with the bundled MiniLM encoder."""
import json
import os

import numpy as np
import pytest

from recr1.retrieval.build_dense import main as build_dense_main
from recr1.retrieval.dense_index import make_faiss_index
from recr1.retrieval.encoder import TextEncoder, resolve_pooling
from recr1.retrieval.searcher import get_searcher


def ids(hits):
    return [doc_id for doc_id, _ in hits]


@pytest.fixture(scope="module")
def dense(dense_index_dir):
    return get_searcher("dense", dense_index_dir)


def test_index_files_and_meta(dense_index_dir, dense):
    with open(os.path.join(dense_index_dir, "meta.json")) as f:
        meta = json.load(f)
    assert meta["encoder"] == "all-MiniLM-L6-v2" and meta["pooling"] == "mean" and meta["dim"] == 384
    assert dense.num_docs == 31


def test_semantic_matches_rank_first(dense):
    queries = ["sneakers for jogging", "earbuds", "chef's cutting tool", "green tea", "phone charger"]
    expected_top = [{"shoe-red", "shoe-blue"}, {"phones-wireless", "phones-studio"},
                    {"knife-steel", "knife-ceramic"}, {"tea-green"}, {"cable-usbc"}]  # fmt: skip
    for hits, top in zip(dense.batch_search(queries, k=3), expected_top):
        assert set(ids(hits)[: len(top)]) == top
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0 + 1e-5


def test_encoder_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = ["red leather running shoes", "a much longer text about wireless headphones " * 5, "x"]
    ours = TextEncoder(None).encode(texts)
    reference = SentenceTransformer(TextEncoder(None).path, device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_hnsw_agrees_with_exact_search():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:20] + 0.05 * rng.normal(size=(20, 16)).astype(np.float32)
    flat, hnsw = make_faiss_index(vectors, "flat"), make_faiss_index(vectors, "hnsw")
    assert hnsw.hnsw.efConstruction == 200
    hnsw.hnsw.efSearch = 128
    _, exact = flat.search(queries, 5)
    _, approx = hnsw.search(queries, 5)
    assert (exact[:, 0] == approx[:, 0]).all() and np.mean(exact == approx) > 0.95


def test_pooling_choice():
    assert resolve_pooling("/models/hyp1231/blair-roberta-base") == "cls"
    assert resolve_pooling("/models/some-bert") == "mean"
    with pytest.raises(ValueError, match="pooling"):
        resolve_pooling("/x", "max")


def test_empty_and_adversarial_queries(dense, adversarial_queries):
    # Long texts only cost encoder time here (the tokenizer truncates them): keep one.
    queries = [q for q in adversarial_queries if len(q) < 300] + ["knife " * 3000]
    results = dense.batch_search(queries, k=5)
    for query, hits in zip(queries, results):
        if query.strip(" \x00\x01\x02\x1f\x7f") == "":
            assert hits == [], repr(query)
        else:
            assert len(hits) == 5, repr(query[:40])
    assert dense.batch_search(["red shoes"] * 3, k=100)[2][:31] == dense.search("red shoes", 31)


def test_cli_builds_hnsw_and_refuses_to_overwrite(tiny_corpus_dir, tmp_path):
    out = str(tmp_path / "hnsw")
    build_dense_main(["--corpus", tiny_corpus_dir, "--index", out, "--index-type", "hnsw", "--batch-size", "16"])
    assert sorted(os.listdir(out)) == ["docids.txt", "index.faiss", "meta.json"]
    with pytest.raises(SystemExit, match="not empty"):
        build_dense_main(["--corpus", tiny_corpus_dir, "--index", out])
