"""Content keys: which items are "the same content", so that duplicates never cross a split.

A held-out figure is only honest when no held-out item has its text, or nearly its text, among
the items a model trained or was tuned on. Splitting by item id does not give that: moderation
traffic repeats itself ("hello", copy-pasted spam, a slur with one letter changed), and on the
shipped ConvAbuse data 43 % of held-out items had their exact text in train or dev. Every
split and fold in the product is therefore taken over *content groups*, and a group's key is
what gets hashed.

Two texts are in one group when
- their normalised forms are equal (`normalise`: Unicode NFKC, case folding, punctuation and
  symbols dropped, whitespace collapsed — "Hello!!" and "hello" are one text), or
- they are near duplicates: the Jaccard similarity of their character 5-gram shingle sets
  (of the normalised text, padded with spaces) is at least `NEAR_DUPLICATE_JACCARD`. Candidates
  are found with MinHash and locality-sensitive hashing (`_PERMUTATIONS` hashes in `_BANDS`
  bands), then every candidate is checked with the exact Jaccard, so nothing is grouped on an
  estimate. Texts too short to have a shingle (after normalisation) are grouped only exactly,
  and so are texts of punctuation or symbols only, by their raw form ("?" with "?").

Groups are *stable*: items are taken in a caller-given order that only ever grows at the end
(the order gold labels were first written), and an item joins the group of the earliest earlier
item it duplicates, or founds its own group keyed by its own normalised text. So adding items
never moves an earlier one to another group, and a split hashed from the group key never moves
an item from train to test. The price of stability is that a late item can be a near duplicate
of two groups that were founded apart: `ContentGroups.bridges` lists those pairs so that a caller
can keep such items out of held-out data (see `leaking_rows`).

Items without text (media only) are keyed by their media reference, exactly; there is no
perceptual hash because the server never fetches media bytes. Plain Python and numpy: no Django.
"""

from __future__ import annotations

import hashlib
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Changing anything below changes which items are grouped, so it is a new key version: splits
# taken with another version are a different evaluation and are never compared silently.
CONTENT_KEY_VERSION = "text-nfkc-shingle5-jaccard0.7-minhash128x32-v1"
NEAR_DUPLICATE_JACCARD = 0.7
SHINGLE = 5
_PERMUTATIONS = 128
_BANDS = 32  # 32 bands of 4 rows: a pair at Jaccard 0.7 is a candidate with probability > 0.9998
_ESTIMATE_FLOOR = 0.5  # MinHash agreement below which a candidate is not verified (see `_verified`)
_PRIME = (1 << 31) - 1
_rng = np.random.default_rng(20261207)
_A = _rng.integers(1, _PRIME, size=_PERMUTATIONS, dtype=np.int64)
_B = _rng.integers(0, _PRIME, size=_PERMUTATIONS, dtype=np.int64)


def normalise(text: str) -> str:
    """NFKC, case-folded, letters/digits/marks kept, every other run of characters one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    space = True
    for char in folded:
        if unicodedata.category(char)[0] in "LNM":
            out.append(char)
            space = False
        elif not space:
            out.append(" ")
            space = True
    return "".join(out).strip()


def exact_key(text: str) -> str:
    """'t:<md5 of the normalised text>'; for a text of punctuation or symbols only ("?", ":/"),
    which normalises to nothing, 'r:<md5 of the text with whitespace collapsed>', so identical
    ones are one group too; '' for an empty or blank text."""
    normal = normalise(text)
    if normal:
        return "t:" + hashlib.md5(normal.encode(), usedforsecurity=False).hexdigest()
    raw = " ".join(text.split())
    return "r:" + hashlib.md5(raw.encode(), usedforsecurity=False).hexdigest() if raw else ""


def shingles(normal: str) -> frozenset[int]:
    """crc32 of each character 5-gram of ' <normalised text> ' (empty when shorter than that)."""
    if len(normal) < SHINGLE:
        return frozenset()
    padded = f" {normal} "  # shingles over characters (not bytes), so any script counts alike
    return frozenset(zlib.crc32(padded[i : i + SHINGLE].encode()) for i in range(len(padded) - SHINGLE + 1))


def minhash(shingle_set: frozenset[int]) -> np.ndarray:
    """(_PERMUTATIONS,) int64 MinHash signature of a non-empty shingle set."""
    x = np.fromiter(shingle_set, dtype=np.int64, count=len(shingle_set)) % _PRIME
    return ((_A[:, None] * x[None, :] + _B[:, None]) % _PRIME).min(axis=1)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True)
class ContentGroups:
    """The group key of each input row, and the near-duplicate pairs that span two groups."""

    keys: list[str]
    exact: list[str]  # each row's exact key ('' for rows without text)
    bridges: list[tuple[int, int]]  # (row, row) near duplicates whose groups differ
    version: str = CONTENT_KEY_VERSION

    def group_ids(self) -> np.ndarray:
        """(n,) int64 dense group number per row (for fold assignment and grouped resampling)."""
        numbers: dict[str, int] = {}
        return np.asarray([numbers.setdefault(key, len(numbers)) for key in self.keys], dtype=np.int64)


def content_groups(texts: Sequence[str], *, fallback_keys: Sequence[str] | None = None) -> ContentGroups:
    """Group rows given in their stable order (see the module docstring).

    `fallback_keys[i]` keys a row whose text normalises to nothing (an item id or media
    reference); without it such a row is a group of its own (`row:<i>`).
    """
    keys: list[str] = []
    exacts: list[str] = []
    by_exact: dict[str, str] = {}  # exact key -> group key
    bands: dict[tuple[int, bytes], list[int]] = {}
    sets: list[frozenset[int]] = []
    signatures = np.zeros((len(texts), _PERMUTATIONS), dtype=np.int64)
    bridges: list[tuple[int, int]] = []
    rows_per_band = _PERMUTATIONS // _BANDS

    def _verified(row: int, candidates: np.ndarray) -> tuple[str, list[int]]:
        """The group to join (the earliest verified near duplicate's, '' for none) and the verified
        near duplicates in *other* groups (bridges). Candidates whose MinHash agreement is under
        `_ESTIMATE_FLOOR` are not checked (a pair at the Jaccard threshold falls that low with
        probability < 1e-6); rows already in the joined group need no check (they cannot bridge),
        which keeps templated near-identical text from costing a set comparison per pair."""
        if len(candidates) == 0:
            return "", []
        agreement = (signatures[candidates] == signatures[row]).mean(axis=1)
        candidates = candidates[agreement >= _ESTIMATE_FLOOR]
        joined, others = "", []
        for other in candidates.tolist():
            if joined and keys[other] == joined:
                continue
            if jaccard(sets[row], sets[other]) >= NEAR_DUPLICATE_JACCARD:
                if joined:
                    others.append(other)
                else:
                    joined = keys[other]
        return joined, others

    for row, text in enumerate(texts):
        exact = exact_key(text or "")
        shingle_set = shingles(normalise(text or "")) if exact else frozenset()
        sets.append(shingle_set)
        exacts.append(exact)
        if not exact:
            keys.append(f"x:{fallback_keys[row]}" if fallback_keys is not None else f"row:{row}")
            continue
        if exact in by_exact:
            keys.append(by_exact[exact])
            continue
        key, matches = exact, []
        if shingle_set:
            signatures[row] = minhash(shingle_set)
            found: set[int] = set()
            for band in range(_BANDS):
                rows = signatures[row, band * rows_per_band : (band + 1) * rows_per_band]
                bucket = bands.setdefault((band, rows.tobytes()), [])
                found.update(bucket)
                bucket.append(row)
            key, matches = _verified(row, np.fromiter(sorted(found), dtype=np.int64, count=len(found)))
        key = key or exact
        by_exact[exact] = key
        keys.append(key)
        bridges.extend((other, row) for other in matches if keys[other] != key)
    return ContentGroups(keys=keys, exact=exacts, bridges=bridges)


def leaking_rows(groups: ContentGroups, split: np.ndarray, *, held_out: Sequence[int]) -> np.ndarray:
    """Rows in a held-out split (codes in `held_out`) that have a near duplicate in another split.

    Precondition: `split` is constant within each group (splits taken by group key, as the callers
    here do). Then only bridges can leak (a group never spans splits); every copy of a bridging text is
    marked, not just the row where the bridge was found. Callers leave these rows out of
    evaluation and say how many they left out.
    """
    split = np.asarray(split)
    crossing = {groups.exact[row] for a, b in groups.bridges if split[a] != split[b] for row in (a, b)}
    crossing.discard("")
    held = np.isin(split, np.asarray(list(held_out)))
    return held & np.asarray([key in crossing for key in groups.exact], dtype=bool)
