"""An index on disk and in memory: layout, generations, locks, catalog, state, events.

    layout        the directory: manifest, generations, the writer lock, atomic writes
    catalog       the SQLite catalog: records, ids, vectors, the change log (Catalog)
    catalog_base  one connection per thread, meta values
    catalog_numbers  the numbers the ranking reads per article, pool statistics
    catalog_lists the stored related lists' tables and the lexical pin
    state         one generation in memory and how it follows the catalog
    live          LiveIndex: the live generation, its lock, catching up with other writers
    events        the click and impression log
    rwlock        the in-process readers-writer lock

The names below are imported from their modules on first use, so importing the package
loads nothing heavy and no module of it imports another through it (recommender.lazy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.lazy import lazy_exports

if TYPE_CHECKING:
    from recommender.index.catalog import Catalog
    from recommender.index.events import Event, EventLog
    from recommender.index.layout import IndexLayout
    from recommender.index.live import LiveIndex
    from recommender.index.rwlock import RWLock
    from recommender.index.state import IndexState

__all__ = ["Catalog", "Event", "EventLog", "IndexLayout", "IndexState", "LiveIndex", "RWLock"]

_HOME = {
    "Catalog": "recommender.index.catalog",
    "Event": "recommender.index.events",
    "EventLog": "recommender.index.events",
    "IndexLayout": "recommender.index.layout",
    "IndexState": "recommender.index.state",
    "LiveIndex": "recommender.index.live",
    "RWLock": "recommender.index.rwlock",
}

__getattr__ = lazy_exports(__name__, _HOME)
