"""Address text made searchable: one normalised key per address, and a prefix index over many of them.

An officer types "12 jln melati-3" or "12, JALAN MELATI 3" for the same door, on a phone, one letter
at a time. So a key ignores case, accents, punctuation and spacing altogether ("12jalanmelati3"), and
the common abbreviations of street types are spelt out first ("jln" and "jalan" are the same word).
The key is computed at ingest (stored with the address) and for every query, by the one function here.

The index answers "addresses whose key starts with this" by binary search on the sorted keys, and
"addresses with a word starting with each word typed" (any order: "melati 12") from a sorted word
list: both stay well under a millisecond for a city's tens of thousands of addresses.
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Street-type abbreviations seen in Malaysian, British and US addresses, spelt out so that either
# spelling finds the other (Pos Malaysia and USPS Publication 28 list these forms).
ABBREVIATIONS = {
    "jln": "jalan", "jl": "jalan", "psn": "persiaran", "lrg": "lorong", "tmn": "taman", "kg": "kampung",
    "kpg": "kampung", "bkt": "bukit", "lbh": "lebuh", "lbr": "lebuhraya", "sri": "seri",
    "st": "street", "rd": "road", "ave": "avenue", "av": "avenue", "blvd": "boulevard", "dr": "drive",
    "ln": "lane", "pl": "place", "ct": "court", "cres": "crescent", "sq": "square", "hwy": "highway",
}
_WORD = re.compile(r"[0-9]+|[^\W\d_]+")


def address_words(text: str) -> list[str]:
    """The words of an address: case-folded, accents removed, abbreviations spelt out, numbers apart
    from letters ("12a" -> "12", "a"), punctuation dropped."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return [ABBREVIATIONS.get(w, w) for w in _WORD.findall(plain)]


def address_key(text: str) -> str:
    """The search key of an address: its words run together ("12, Jln. Melati-3" -> "12jalanmelati3"), except
    that two numbers in a row keep a space between them ("Jalan 1 2" is not "Jalan 12")."""
    return _joined(address_words(text))


def _joined(words: list[str]) -> str:
    out: list[str] = []
    for word in words:
        if out and out[-1][-1].isdigit() and word[0].isdigit():
            out.append(" ")
        out.append(word)
    return "".join(out)


@dataclass(frozen=True)
class AddressMatch:
    address_id: str
    text: str
    lat: float
    lng: float


class AddressIndex:
    """Prefix search over addresses (ids, texts, points; keys as address_key gives them)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], lats: Sequence[float], lngs: Sequence[float],
                 keys: Sequence[str] | None = None):
        keys = [address_key(t) for t in texts] if keys is None else list(keys)
        order = sorted(range(len(keys)), key=lambda i: (keys[i], texts[i]))
        self._ids = [str(ids[i]) for i in order]
        self._texts = [str(texts[i]) for i in order]
        self._keys = [keys[i] for i in order]
        self._lat = np.asarray([lats[i] for i in order], dtype=float)
        self._lng = np.asarray([lngs[i] for i in order], dtype=float)
        self._by_id = {a: i for i, a in enumerate(self._ids)}
        # Word index: every (word, row) pair sorted by word, for "a word starting with ..." look-ups.
        pairs = sorted((w, i) for i, t in enumerate(self._texts) for w in set(address_words(t)))
        self._words = [w for w, _ in pairs]
        self._word_rows = np.asarray([i for _, i in pairs], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def _match(self, row: int) -> AddressMatch:
        return AddressMatch(self._ids[row], self._texts[row], float(self._lat[row]), float(self._lng[row]))

    def by_id(self, address_id: str) -> AddressMatch | None:
        row = self._by_id.get(address_id)
        return None if row is None else self._match(row)

    def exact(self, text: str) -> list[AddressMatch]:
        """Addresses whose key is the key of ``text`` (one, usually; several where a gazetteer repeats one)."""
        key = address_key(text)
        if not key:
            return []
        lo = bisect.bisect_left(self._keys, key)
        hi = bisect.bisect_right(self._keys, key)
        return [self._match(r) for r in range(lo, hi)]

    def _key_prefix_rows(self, key: str, limit: int) -> list[int]:
        lo = bisect.bisect_left(self._keys, key)
        hi = bisect.bisect_left(self._keys, key + "\uffff")
        return list(range(lo, min(hi, lo + limit)))

    def _word_prefix_rows(self, word: str) -> np.ndarray:
        lo = bisect.bisect_left(self._words, word)
        hi = bisect.bisect_left(self._words, word + "\uffff")
        return np.unique(self._word_rows[lo:hi])

    def search(self, text: str, limit: int = 10) -> list[AddressMatch]:
        """Up to ``limit`` addresses for what was typed so far: those whose key starts with the typed key
        first (shortest first: the exact address before "... 12A"), then those having a word that starts
        with each typed word, in any order."""
        words = address_words(text)
        key = _joined(words)
        if not key or limit <= 0:
            return []
        rows = self._key_prefix_rows(key, limit * 20)
        rows.sort(key=lambda r: (len(self._keys[r]), self._keys[r]))
        found = rows[:limit]
        if len(found) < limit:
            common = None
            for word in sorted(set(words), key=len, reverse=True):  # the longest word narrows most
                rows_w = self._word_prefix_rows(word)
                common = rows_w if common is None else np.intersect1d(common, rows_w, assume_unique=True)
                if len(common) == 0:
                    break
            seen = set(found)
            for r in (common if common is not None else []):
                if len(found) >= limit:
                    break
                if int(r) not in seen:
                    found.append(int(r))
        return [self._match(r) for r in found]
