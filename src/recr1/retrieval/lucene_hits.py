"""Read a Lucene ``TopDocs`` into Python as two flat lists, without one Python object per hit.

Through pyjnius, touching ``TopDocs.scoreDocs`` builds a Python wrapper for every ``ScoreDoc``
(about 5 us each: 5 ms for 1000 hits, four times the cost of the Lucene search itself). Primitive
arrays, in contrast, cross JNI in one bulk copy. No helper in the Lucene/Anserini jar turns
``ScoreDoc[]`` into ``int[]``, and no Java compiler ships with the runtime, so the conversion is
assembled from JDK method handles instead:

    docs:   TopDocs -> scoreDocs -> Arrays.stream -> mapToInt(ScoreDoc::doc)     -> toArray -> int[]
    scores: TopDocs -> scoreDocs -> Arrays.stream -> mapToDouble(ScoreDoc::score) -> toArray -> double[]

The ``ToIntFunction``/``ToDoubleFunction`` are built inside the handle chain (pyjnius cannot wrap
the JDK's hidden proxy classes if they are returned to Python). Method handles are immutable, so
one :class:`HitReader` serves every thread.
"""
from __future__ import annotations

from recr1.retrieval.java import java_class

_SCORE_DOC = "org.apache.lucene.search.ScoreDoc"
_TOP_DOCS = "org.apache.lucene.search.TopDocs"


class HitReader:
    """Reads ``(lucene_doc_ids, scores)`` from a ``TopDocs`` in two JNI calls."""

    def __init__(self):
        handles = java_class("java.lang.invoke.MethodHandles")
        method_type = java_class("java.lang.invoke.MethodType")
        jclass = java_class("java.lang.Class")
        loader = java_class("java.lang.ClassLoader").getSystemClassLoader()
        lookup = handles.publicLookup()

        def cls(name):
            return jclass.forName(name)

        def mtype(descriptor):
            return method_type.fromMethodDescriptorString(descriptor, loader)

        make_proxy = lookup.findStatic(
            cls("java.lang.invoke.MethodHandleProxies"),
            "asInterfaceInstance",
            mtype("(Ljava/lang/Class;Ljava/lang/invoke/MethodHandle;)Ljava/lang/Object;"),
        )

        def in_chain_function(interface, getter):
            # () -> interface instance that calls `getter`; created inside Java on each use.
            return (
                make_proxy.bindTo(cls(f"java.util.function.{interface}"))
                .bindTo(getter)
                .asType(mtype(f"()Ljava/util/function/{interface};"))
            )

        doc_getter = lookup.findGetter(cls(_SCORE_DOC), "doc", java_class("java.lang.Integer").TYPE)
        score_getter = lookup.findGetter(cls(_SCORE_DOC), "score", java_class("java.lang.Float").TYPE)
        stream_of = lookup.findStatic(
            cls("java.util.Arrays"), "stream", mtype("([Ljava/lang/Object;)Ljava/util/stream/Stream;")
        ).asType(mtype("([Lorg/apache/lucene/search/ScoreDoc;)Ljava/util/stream/Stream;"))
        stream_cls = cls("java.util.stream.Stream")
        map_to_int = handles.foldArguments(
            lookup.findVirtual(
                stream_cls, "mapToInt", mtype("(Ljava/util/function/ToIntFunction;)Ljava/util/stream/IntStream;")
            ),
            1,
            in_chain_function("ToIntFunction", doc_getter),
        )
        map_to_double = handles.foldArguments(
            lookup.findVirtual(
                stream_cls,
                "mapToDouble",
                mtype("(Ljava/util/function/ToDoubleFunction;)Ljava/util/stream/DoubleStream;"),
            ),
            1,
            in_chain_function("ToDoubleFunction", score_getter),
        )
        int_array = lookup.findVirtual(cls("java.util.stream.IntStream"), "toArray", mtype("()[I"))
        double_array = lookup.findVirtual(cls("java.util.stream.DoubleStream"), "toArray", mtype("()[D"))
        score_docs = lookup.findGetter(cls(_TOP_DOCS), "scoreDocs", cls("[L" + _SCORE_DOC + ";"))

        then = handles.filterReturnValue
        self._docs_of = then(score_docs, then(then(stream_of, map_to_int), int_array))
        self._scores_of = then(score_docs, then(then(stream_of, map_to_double), double_array))
        self._array_list = java_class("java.util.ArrayList")

    def read(self, top_docs) -> tuple[list[int], list[float]]:
        """Lucene doc ids and scores of the hits in ``top_docs``, best first (two lists of length n_hits)."""
        args = self._array_list()
        args.add(top_docs)
        docs = self._docs_of.invokeWithArguments(args)
        scores = self._scores_of.invokeWithArguments(args)
        return list(docs or ()), list(scores or ())
