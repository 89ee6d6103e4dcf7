"""The coalescer of concurrent one-key calls lives in `indexer/coalesce.py`, where the
Elasticsearch store's reads use it too; the replica's Redis round trips import it here."""

from indexer.coalesce import MAX_BATCH, Coalescer

__all__ = ["MAX_BATCH", "Coalescer"]
