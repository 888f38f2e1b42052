"""The only package that imports duckdb: schema, the single writer thread, per-thread readers, named queries."""
from store.store import BatchResult, Store, StoreClosed

__all__ = ["BatchResult", "Store", "StoreClosed"]
