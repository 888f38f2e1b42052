"""Read models for pages: (store, typed params) -> dataclasses/DataFrames, combining queries and analytics."""
