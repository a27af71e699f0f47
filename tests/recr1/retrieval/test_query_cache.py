"""The (query, k) -> hits cache in front of a real Lucene searcher: exact, shared, bounded, counted."""
import pytest

from recr1.retrieval.lucene_searcher import LuceneSearcher
from recr1.retrieval.query_cache import HIT_STAT, MISS_STAT, CachedSearcher
from recr1.retrieval.searcher import get_searcher

KNOWN = ["red leather shoes", "steel knife", "brass compass", "socks", "usb c cable", "wireless headphones"]


@pytest.fixture
def plain(lucene_index_dir):
    """The process-wide uncached BM25 searcher over the tiny catalog."""
    searcher = get_searcher("bm25", lucene_index_dir, cache_size=0)
    assert isinstance(searcher, LuceneSearcher)
    return searcher


def test_same_hits_and_scores_as_the_uncached_searcher(plain, adversarial_queries):
    cached = CachedSearcher(plain, max_entries=1000)
    # Repeats, spacing and case variants, and the adversarial texts the reward survives.
    queries = KNOWN + ["red  leather\tshoes", "RED leather shoes"] + adversarial_queries + KNOWN[::-1]
    for k in (1, 3, 1000):
        expected = plain.batch_search(queries, k)
        first = cached.batch_search(queries, k)
        again = cached.batch_search(queries, k)
        assert first == expected and again == expected, k
        assert any(hits for hits in expected)
    assert [cached.search(q, 2) for q in KNOWN] == [plain.search(q, 2) for q in KNOWN]


def test_hits_and_misses_are_counted_per_distinct_query_and_k(plain):
    cached = CachedSearcher(plain, max_entries=100)
    before_hit, before_miss = plain.stats[HIT_STAT], plain.stats[MISS_STAT]
    cached.batch_search(["red leather shoes", "steel knife", "red leather shoes"], 10)
    assert (plain.stats[HIT_STAT] - before_hit, plain.stats[MISS_STAT] - before_miss) == (0, 2)
    # "red  leather shoes" is searched as "red leather shoes": the same entry; another k is another entry.
    cached.batch_search(["red  leather shoes", "steel knife", "socks"], 10)
    cached.batch_search(["steel knife"], 5)
    assert (plain.stats[HIT_STAT] - before_hit, plain.stats[MISS_STAT] - before_miss) == (2, 4)
    assert cached.stats is plain.stats and cached.size == 4
    assert cached.contains("steel knife", 5) and not cached.contains("steel knife", 6)


def test_least_recently_used_entries_go_first(plain):
    cached = CachedSearcher(plain, max_entries=2)
    cached.batch_search(["red leather shoes"], 5)
    cached.batch_search(["steel knife"], 5)
    cached.batch_search(["red leather shoes"], 5)  # now the most recent
    cached.batch_search(["socks"], 5)
    assert cached.size == 2
    assert cached.contains("red leather shoes", 5) and cached.contains("socks", 5)
    assert not cached.contains("steel knife", 5)
    assert cached.batch_search(["steel knife"], 5) == plain.batch_search(["steel knife"], 5)


def test_empty_results_are_not_kept(plain):
    cached = CachedSearcher(plain, max_entries=10)
    assert cached.batch_search(["", "zzqqxx nothingmatches"], 5) == [[], []]
    assert cached.size == 0


def test_get_searcher_shares_one_cached_searcher_and_checks_cache_size(lucene_index_dir, plain):
    shared = get_searcher("bm25", lucene_index_dir)
    assert isinstance(shared, CachedSearcher) and shared is get_searcher("bm25", lucene_index_dir)
    assert shared.ids_in_doc_order and shared.kind == "bm25" and shared.num_docs == 31
    small = get_searcher("bm25", lucene_index_dir, cache_size=3)
    assert isinstance(small, CachedSearcher) and small.max_entries == 3 and small is not shared
    for bad in (-1, "big", 2.5, True):
        with pytest.raises(ValueError, match="cache_size"):
            get_searcher("bm25", lucene_index_dir, cache_size=bad)
    with pytest.raises(ValueError, match="cache_size"):
        CachedSearcher(plain, max_entries=0)


def test_dense_searcher_cached_gives_its_own_hits(dense_index_dir):
    plain = get_searcher("dense", dense_index_dir, cache_size=0)
    cached = CachedSearcher(plain, max_entries=100)
    queries = KNOWN + ["red  leather shoes", "", "😀🔥 shoes 🥾"]
    first = cached.batch_search(KNOWN[:3], 5)  # part of the next call then comes from the cache
    assert cached.batch_search(KNOWN[:3], 5) == first
    got, expected = cached.batch_search(queries, 5), plain.batch_search(queries, 5)
    # The encoder's float32 output moves by ~1e-7 with the batch a query is encoded in (padding), with or
    # without the cache: the cache returns what the searcher gave when the query was first searched.
    assert [[d for d, _ in hits] for hits in got] == [[d for d, _ in hits] for hits in expected]
    assert [[s for _, s in hits] for hits in got] == [pytest.approx([s for _, s in hits], abs=1e-5) for hits in expected]
    assert cached.contains("red leather  shoes", 5)  # keyed on the dense searcher's own cleaning
