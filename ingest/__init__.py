"""Bytes and rows in; validated typed rows or quarantine rows with a reason code out."""
