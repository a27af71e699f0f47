"""BM25 over a real tiny Lucene index: known rankings, Pyserini parity, query modes, bad input."""
import os

import pytest

from recr1.retrieval.build_lucene import build_lucene_index
from recr1.retrieval.lucene_searcher import DOCIDS_FILE, LuceneSearcher
from recr1.retrieval.searcher import get_searcher, load_searcher


def ids(hits):
    return [doc_id for doc_id, _ in hits]


@pytest.fixture(scope="module")
def corpus_order_index_dir(tiny_corpus_dir, tmp_path_factory):
    """The tiny catalog indexed in corpus order (tie-z before tie-a), as a multi-threaded build does."""
    index = str(tmp_path_factory.mktemp("lucene_corpus_order") / "index")
    build_lucene_index(tiny_corpus_dir, index, threads=2)
    return index


@pytest.fixture(params=["id_order", "corpus_order"])
def any_index_dir(request, lucene_index_dir, corpus_order_index_dir):
    return lucene_index_dir if request.param == "id_order" else corpus_order_index_dir


def test_index_has_every_item_and_a_docid_table(lucene_index_dir, bm25_searcher):
    assert bm25_searcher.num_docs == 31
    with open(os.path.join(lucene_index_dir, DOCIDS_FILE)) as f:
        assert len(f.read().splitlines()) == 31


def test_known_rankings(bm25_searcher):
    red, knife = bm25_searcher.batch_search(["red leather shoes", "steel knife"], k=2)
    assert ids(red) == ["shoe-red", "shoe-blue"]
    assert ids(knife)[0] == "knife-steel"
    assert red[0][1] > red[1][1] > 0


def test_default_build_indexes_in_id_order(lucene_index_dir, corpus_order_index_dir):
    with open(os.path.join(corpus_order_index_dir, DOCIDS_FILE)) as f:
        assert f.read().splitlines()[8:11] == ["tie-z", "tie-a", "tie-m"]
    assert get_searcher("bm25", lucene_index_dir).ids_in_doc_order
    assert not get_searcher("bm25", corpus_order_index_dir).ids_in_doc_order


def test_score_ties_break_by_id_even_at_the_cutoff(any_index_dir):
    searcher = get_searcher("bm25", any_index_dir)
    assert ids(searcher.search("brass compass", k=3)) == ["tie-a", "tie-m", "tie-z"]
    before = searcher.stats["tie_at_cutoff_resorted"]
    assert ids(searcher.search("brass compass", k=2)) == ["tie-a", "tie-m"]
    assert ids(searcher.search("brass compass", k=1)) == ["tie-a"]
    assert searcher.stats["tie_at_cutoff_resorted"] == before + (0 if searcher.ids_in_doc_order else 2)


def test_same_ranking_and_scores_as_pyserini(any_index_dir):
    # pyserini.search.lucene.LuceneSearcher.search(q, k) is this Java call plus a Python wrapper
    # (importing pyserini itself costs ~10 s of unrelated imports).
    from recr1.retrieval.java import java_class

    searcher = get_searcher("bm25", any_index_dir)
    reference = java_class("io.anserini.search.SimpleSearcher")(any_index_dir)
    reference.set_bm25(1.2, 0.75)
    queries = ["red leather shoes", "brass compass", "socks", "comfortable cotton socks pack", "kitchen knife",
               "headphones black wireless", "compass socks shoes", "pack of pairs"]  # fmt: skip
    for k in (1, 2, 5, 12, 50):
        ours = searcher.batch_search(queries, k)
        for query, hits in zip(queries, ours):
            expected = reference.search(query, k)
            assert ids(hits) == [h.docid for h in expected], (query, k)
            assert [s for _, s in hits] == pytest.approx([h.score for h in expected], abs=1e-4)


def test_batch_equals_one_by_one_and_handles_duplicates(bm25_searcher):
    queries = ["socks", "red shoes", "socks", "tea", "compass"] * 6
    batch = bm25_searcher.batch_search(queries, k=7)
    assert batch == [bm25_searcher.search(q, k=7) for q in queries]


def test_k_limits(bm25_searcher):
    assert len(bm25_searcher.search("socks", k=1000)) == 20
    assert bm25_searcher.search("socks", k=0) == []
    assert bm25_searcher.batch_search([], k=10) == []


def test_bm25_parameters_change_scores(lucene_index_dir, bm25_searcher):
    other = get_searcher("bm25", lucene_index_dir, k1=0.9, b=0.4)
    assert other is not bm25_searcher and other is get_searcher("bm25", lucene_index_dir, k1=0.9, b=0.4)
    assert bm25_searcher.search("socks comfortable", 1)[0][1] != other.search("socks comfortable", 1)[0][1]


def test_repeated_words_weigh_more_unless_deduplicated(lucene_index_dir, bm25_searcher):
    dedup = get_searcher("bm25", lucene_index_dir, dedup_terms=True)
    once = bm25_searcher.search("socks comfortable", 3)
    assert bm25_searcher.search("socks socks socks comfortable", 3) != once
    assert dedup.search("socks socks socks comfortable comfortable", 3) == once


def test_rec_r1_wrapping_loses_the_first_word(lucene_index_dir, bm25_searcher):
    compat = get_searcher("bm25", lucene_index_dir, rec_r1_compat=True)
    assert compat.search("knife steel", 5) == bm25_searcher.search("steel", 5)
    assert compat.search("compass", 5) == []


def test_lucene_syntax_boolean_queries(lucene_index_dir, bm25_searcher):
    lucene = get_searcher("bm25", lucene_index_dir, query_syntax="lucene")
    assert set(ids(lucene.search("knife AND NOT steel", 10))) == {"knife-ceramic"}
    assert set(ids(lucene.search('"running shoes" AND red', 10))) == {"shoe-red"}
    assert ids(lucene.search("headphones -wireless", 10)) == ["phones-studio"]
    # Unparsable text falls back to the bag of words.
    before = lucene.stats["lucene_syntax_fallback"]
    assert lucene.search("red shoes AND (", 5) == bm25_searcher.search("red shoes AND (", 5)
    assert lucene.stats["lucene_syntax_fallback"] == before + 1


def test_long_queries_are_cut_to_max_terms(lucene_index_dir):
    short = load_searcher("bm25", lucene_index_dir, max_query_terms=2, threads=1)
    assert short.search("vintage compass red leather shoes", 5) == short.search("vintage compass", 5)
    short.close()


@pytest.mark.parametrize("syntax", ["bow", "lucene"])
def test_adversarial_queries_never_raise(lucene_index_dir, adversarial_queries, syntax):
    searcher = get_searcher("bm25", lucene_index_dir, query_syntax=syntax, max_query_terms=None)
    results = searcher.batch_search(adversarial_queries, k=10)
    assert len(results) == len(adversarial_queries)
    for query, hits in zip(adversarial_queries, results):
        assert all(isinstance(d, str) and isinstance(s, float) for d, s in hits), query
    assert searcher.stats["search_error"] == 0
    empty = {q for q, hits in zip(adversarial_queries, results) if not hits}
    assert {"", "   ", "\x00\x01\x02\x1f\x7f"} <= empty


def test_bad_settings_and_paths_are_named(tmp_path, lucene_index_dir):
    with pytest.raises(ValueError, match="query_syntax"):
        LuceneSearcher(lucene_index_dir, query_syntax="sql")
    with pytest.raises(FileNotFoundError, match="not a readable Lucene index"):
        LuceneSearcher(tmp_path)
    with pytest.raises(FileNotFoundError, match="index folder not found"):
        load_searcher("bm25", tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown retriever kind"):
        load_searcher("tfidf", lucene_index_dir)


def test_search_threads_above_one_are_ignored_with_a_warning(lucene_index_dir, bm25_searcher, caplog):
    # pyjnius is not thread-safe: a threaded pool corrupted JNI arguments mid-training.
    queries = ["red leather shoes", "steel knife", "blue", "red leather shoes"]
    with caplog.at_level("WARNING", logger="recr1.retrieval.lucene_searcher"):
        threaded = LuceneSearcher(lucene_index_dir, threads=8)
    assert "threads=8 ignored" in caplog.text
    assert threaded.threads == 1
    assert threaded.batch_search(queries, k=5) == bm25_searcher.batch_search(queries, k=5)
    threaded.close()
