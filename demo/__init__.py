"""A deterministic demo city (Putrajaya-like), its epidemic, its data files and a live simulator."""
