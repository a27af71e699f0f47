"""Rec-R1 data: raw-file preparation into verl parquet rows, corpus export, the synthetic catalog.

Entry points (each ``python -m recr1.data.<name> --help``):
    amazon_c4   Amazon-C4 test.csv + item pool -> train/val/test.parquet
    esci        Amazon Shopping Queries (ESCI) -> train/val/test.parquet + corpus
    amazon_review  an Amazon Reviews 2023 category -> next-item train/val/test.parquet + corpus (sequential rec.)
    corpus      item pool -> JSONL {"id", "contents"} shards for indexing
    synthetic   an offline catalog in the Amazon-C4 raw format
    synthetic_reviews  an offline category in the Amazon Reviews 2023 raw format (users with tastes)
    check       validate prepared parquet files against the row contract
"""
