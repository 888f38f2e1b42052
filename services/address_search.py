"""Address search as you type, over the stored gazetteer: the one place the page and the API look addresses up.

The index (geo.addresses.AddressIndex: sorted keys, binary search) is built once from the stored
``addresses`` rows and rebuilt when the table changes. The gazetteer lists places, not people: it is
not cut by the privacy function, and searching it says nothing about cases (the address check, which
does, is audited and rate-limited on its own).
"""
from __future__ import annotations

import threading

from geo.addresses import AddressIndex, AddressMatch, address_key
from store import Store
from store import queries_addresses as qa

MAX_SUGGESTIONS = 20

_indexes: dict[tuple[str, str], AddressIndex] = {}
_lock = threading.Lock()


def address_index(store: Store) -> AddressIndex:
    """The search index of the stored gazetteer (cached until an address is added or erased)."""
    key = (str(store.path), qa.addresses_version(store))
    with _lock:
        found = _indexes.get(key)
    if found is not None:
        return found
    rows = qa.address_rows(store)
    made = AddressIndex(rows["address_id"].tolist(), rows["text"].tolist(), rows["lat"].tolist(),
                        rows["lng"].tolist(), rows["search_key"].tolist())
    with _lock:
        _indexes.clear()  # one city per process: keep the newest
        _indexes[key] = made
    return made


def suggest_addresses(store: Store, typed: str, limit: int = 10) -> list[AddressMatch]:
    """Addresses for what was typed so far (case, spacing and punctuation do not matter)."""
    return address_index(store).search(typed, max(1, min(limit, MAX_SUGGESTIONS)))


def find_address(store: Store, text: str) -> list[AddressMatch]:
    """The address(es) whose text is ``text`` up to case, spacing, punctuation and abbreviations."""
    return address_index(store).exact(text) if address_key(text) else []


def address_by_id(store: Store, address_id: str) -> AddressMatch | None:
    return address_index(store).by_id(address_id)
