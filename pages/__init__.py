"""One module per screen (Dash Pages); layouts build nothing heavy at import."""
