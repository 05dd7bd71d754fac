"""The lexical side of the hybrid ranking: hashed term counts and their search.

    index         LexicalIndex: rows in two segments, writes, pinned statistics, scoring
    terms         tokenising and hashing (TermCounter, entity words), TermRow
    weights       term weighting: IDF, row norms, query weights; PinnedStats
    search        candidate retrieval: inverted-list sums, the tie-safe cut, row dots
    snapshot      the index on disk: one uncompressed .npz, mapped or copied

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.compiled.switch import use_compiled
    from recommender.lexical.index import LexicalIndex
    from recommender.lexical.terms import TermRow
    from recommender.lexical.weights import PinnedStats

__all__ = ["LexicalIndex", "PinnedStats", "TermRow", "use_compiled"]

_HOME = {
    "LexicalIndex": "recommender.lexical.index",
    "PinnedStats": "recommender.lexical.weights",
    "TermRow": "recommender.lexical.terms",
    "use_compiled": "recommender.compiled.switch",
}

__getattr__ = lazy_exports(__name__, _HOME)
