"""Editorial rules: a versioned JSON file attached to an index, applied by the ranking.

    {
      "version": 1,
      "pinned": {"story-1": ["must-read-7", "explainer-2"]},
      "blocked_pairs": [["story-1", "satire-9"]],
      "never_pair": [["obituaries", "satire"]],
      "never_offer": [{"section": "sponsored", "to": "*"}],
      "recency_days": {"sports": 3, "*": 30},
      "min_score": {"score": 2.0, "min_items": 3, "fallback": "backfill"}
    }

Every key but ``version`` is optional. Sections match case-insensitively.

- ``pinned``: article id -> ids always shown first in its list, in that order
  (an editor's explicit choice: the other rules do not remove them).
- ``blocked_pairs``: the two articles never appear in each other's lists.
- ``never_pair``: articles of the two sections never appear in each other's lists.
- ``never_offer``: articles of ``section`` never appear in the lists of articles
  of the ``to`` sections (a list, or ``"*"``: every other section).
- ``recency_days``: a candidate of that section (``"*"``: any other) appears only
  if published within that many days of the query story; undated candidates
  never pass, and an undated query story applies no window.
- ``min_score``: items scoring under ``score`` are dropped; when fewer than
  ``min_items`` remain, ``fallback`` decides: ``"nothing"`` shows an empty
  list, ``"backfill"`` fills the list with the latest articles of the query's
  section that pass the other rules (score 0).

:class:`Rules` is parsed and validated here; :class:`Recommender` applies it in
one place (its ranking step), so the CLI, the library and the service agree.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import InvalidArgumentError
from recommender.index.layout import RULES

__all__ = ["FALLBACKS", "RULES_FILE", "RULES_VERSION", "Editorial", "QueryStory", "Rules"]

RULES_VERSION = 1
RULES_FILE = RULES
FALLBACKS = ("nothing", "backfill")
ANY_SECTION = "*"
_KEYS = (
    "version",
    "pinned",
    "blocked_pairs",
    "never_pair",
    "never_offer",
    "recency_days",
    "min_score",
)
_DAY = 86_400.0


@dataclass(frozen=True)
class MinScore:
    score: float
    min_items: int = 1
    fallback: str = "nothing"


@dataclass(frozen=True)
class Rules:
    """A validated rules file; build it with :meth:`from_dict` or :meth:`load`."""

    pinned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    blocked_pairs: tuple[tuple[str, str], ...] = ()
    never_pair: tuple[tuple[str, str], ...] = ()
    #: (candidate section, query sections); an empty tuple means every other section.
    never_offer: tuple[tuple[str, tuple[str, ...]], ...] = ()
    recency_days: Mapping[str, float] = field(default_factory=dict)
    min_score: MinScore | None = None
    version: int = RULES_VERSION

    # -- reading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rules:
        """Read and validate a rules file; errors name the file and the bad value."""
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArgumentError(f"cannot read rules file {str(path)!r}: {exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidArgumentError(f"rules file {str(path)!r}: invalid JSON: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "rules") -> Rules:
        """Validate parsed JSON; every error says where (``pinned['a'][1]``) and what is valid."""
        where = _Where(source)
        if not isinstance(data, dict):
            raise where.error("", f"expected a JSON object, got {_kind(data)}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise where.error(unknown[0], f"unknown key; expected one of {list(_KEYS)}")
        if data.get("version") != RULES_VERSION:
            raise where.error(
                "version",
                f"must be {RULES_VERSION} (this recommender reads rules version "
                f"{RULES_VERSION}), got {data.get('version')!r}",
            )
        return cls(
            pinned=_pinned(data.get("pinned", {}), where),
            blocked_pairs=_pairs(data.get("blocked_pairs", []), "blocked_pairs", where, fold=False),
            never_pair=_pairs(data.get("never_pair", []), "never_pair", where, fold=True),
            never_offer=_never_offer(data.get("never_offer", []), where),
            recency_days=_recency(data.get("recency_days", {}), where),
            min_score=_min_score(data.get("min_score"), where),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version}
        if self.pinned:
            data["pinned"] = {k: list(v) for k, v in self.pinned.items()}
        if self.blocked_pairs:
            data["blocked_pairs"] = [list(p) for p in self.blocked_pairs]
        if self.never_pair:
            data["never_pair"] = [list(p) for p in self.never_pair]
        if self.never_offer:
            data["never_offer"] = [
                {"section": s, "to": list(to) if to else ANY_SECTION} for s, to in self.never_offer
            ]
        if self.recency_days:
            data["recency_days"] = dict(self.recency_days)
        if self.min_score is not None:
            data["min_score"] = {
                "score": self.min_score.score,
                "min_items": self.min_score.min_items,
                "fallback": self.min_score.fallback,
            }
        return data

    @property
    def digest(self) -> str:
        """Identifies these rules (stored lists remember the rules they were ranked under)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def summary(self) -> str:
        parts = [
            f"{len(self.pinned)} pinned list(s)",
            f"{len(self.blocked_pairs)} blocked pair(s)",
            f"{len(self.never_pair)} never-pair section rule(s)",
            f"{len(self.never_offer)} never-offer section rule(s)",
            f"{len(self.recency_days)} recency window(s)",
        ]
        if self.min_score is not None:
            m = self.min_score
            parts.append(f"min score {m.score:g} ({m.min_items} item(s), else {m.fallback})")
        return ", ".join(parts)

    # -- applying ----------------------------------------------------------------------

    @property
    def filters_candidates(self) -> bool:
        """Whether any rule removes candidates (as opposed to pinning or cutting by score)."""
        return bool(self.blocked_pairs or self.never_pair or self.never_offer or self.recency_days)

    def blocked_with(self, article_id: str | None) -> set[str]:
        """Article ids never shown next to ``article_id``."""
        if article_id is None:
            return set()
        out = set()
        for a, b in self.blocked_pairs:
            if a == article_id:
                out.add(b)
            elif b == article_id:
                out.add(a)
        return out

    def banned_sections(self, query_section: str | None) -> set[str]:
        """Candidate sections (case-folded) never shown in a list of ``query_section``."""
        query = (query_section or "").casefold()
        out = set()
        for a, b in self.never_pair:
            if query == a:
                out.add(b)
            if query == b:
                out.add(a)
        for section, to in self.never_offer:
            if (not to and query != section) or query in to:
                out.add(section)
        return out

    def window_seconds(self, section: str) -> float | None:
        """The recency window of a candidate section, in seconds (None: no window)."""
        days = self.recency_days.get(section, self.recency_days.get(ANY_SECTION))
        return None if days is None else days * _DAY


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> InvalidArgumentError:
        at = f" {path}" if path else ""
        return InvalidArgumentError(f"{self.source}:{at}: {message}")


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__)


def _string(value: Any, path: str, where: _Where, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(path, f"expected {what} (a non-empty string), got {_kind(value)}")
    return value.strip()


def _list(value: Any, path: str, where: _Where) -> list[Any]:
    if not isinstance(value, list):
        raise where.error(path, f"expected an array, got {_kind(value)}")
    return value


def _pinned(value: Any, where: _Where) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise where.error(
            "pinned", f"expected an object of article id -> [ids], got {_kind(value)}"
        )
    out: dict[str, tuple[str, ...]] = {}
    for article_id, pins in value.items():
        path = f"pinned[{article_id!r}]"
        items = [
            _string(p, f"{path}[{n}]", where, "an article id")
            for n, p in enumerate(_list(pins, path, where))
        ]
        if article_id in items:
            raise where.error(path, f"an article cannot be pinned to itself ({article_id!r})")
        out[str(article_id)] = tuple(dict.fromkeys(items))
    return out


def _pairs(value: Any, key: str, where: _Where, *, fold: bool) -> tuple[tuple[str, str], ...]:
    what = "a section" if fold else "an article id"
    out = []
    for n, pair in enumerate(_list(value, key, where)):
        path = f"{key}[{n}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise where.error(path, f"expected a pair [A, B], got {json.dumps(pair)}")
        a, b = (_string(x, f"{path}[{i}]", where, what) for i, x in enumerate(pair))
        if fold:
            a, b = a.casefold(), b.casefold()
        out.append((a, b))
    return tuple(out)


def _never_offer(value: Any, where: _Where) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out: list[tuple[str, tuple[str, ...]]] = []
    for n, rule in enumerate(_list(value, "never_offer", where)):
        path = f"never_offer[{n}]"
        if not isinstance(rule, dict) or set(rule) != {"section", "to"}:
            raise where.error(
                path, f'expected {{"section": S, "to": [sections] or "*"}}, got {json.dumps(rule)}'
            )
        section = _string(rule["section"], f"{path}.section", where, "a section").casefold()
        to = rule["to"]
        if to == ANY_SECTION:
            out.append((section, ()))
            continue
        targets = tuple(
            _string(t, f"{path}.to[{i}]", where, "a section").casefold()
            for i, t in enumerate(_list(to, f"{path}.to", where))
        )
        if not targets:
            raise where.error(f"{path}.to", 'expected at least one section, or "*"')
        out.append((section, targets))
    return tuple(out)


def _recency(value: Any, where: _Where) -> dict[str, float]:
    if not isinstance(value, dict):
        raise where.error(
            "recency_days", f"expected an object of section -> days, got {_kind(value)}"
        )
    out = {}
    for section, days in value.items():
        path = f"recency_days[{section!r}]"
        if isinstance(days, bool) or not isinstance(days, (int, float)) or days <= 0:
            raise where.error(path, f"expected a number of days > 0, got {json.dumps(days)}")
        out[str(section).strip().casefold()] = float(days)
    return out


def _min_score(value: Any, where: _Where) -> MinScore | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "score" not in value:
        raise where.error(
            "min_score",
            'expected {"score": X, "min_items": N, "fallback": "nothing" or "backfill"}, '
            f"got {json.dumps(value)}",
        )
    unknown = sorted(set(value) - {"score", "min_items", "fallback"})
    if unknown:
        raise where.error(
            f"min_score.{unknown[0]}", "unknown key; expected score, min_items, fallback"
        )
    score = value["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise where.error("min_score.score", f"expected a number, got {json.dumps(score)}")
    items = value.get("min_items", 1)
    if isinstance(items, bool) or not isinstance(items, int) or items < 1:
        raise where.error(
            "min_score.min_items", f"expected an integer >= 1, got {json.dumps(items)}"
        )
    fallback = value.get("fallback", "nothing")
    if fallback not in FALLBACKS:
        raise where.error(
            "min_score.fallback",
            f"unknown fallback {fallback!r}; expected one of {list(FALLBACKS)}",
        )
    return MinScore(float(score), items, fallback)


def check_ids(rules: Rules, known: Iterable[str]) -> list[str]:
    """Warnings for article ids the rules name that are not in an index."""
    present = set(known)
    named = set(rules.pinned) | {p for pins in rules.pinned.values() for p in pins}
    named |= {a for pair in rules.blocked_pairs for a in pair}
    return [f"article {aid!r} is not in the index (yet)" for aid in sorted(named - present)]


# -- applying rules to ranked lists --------------------------------------------------------


@dataclass(frozen=True)
class QueryStory:
    """What the rules need to know about the story a list is for."""

    int_id: int | None
    section: str  # case-folded, "" when none
    time: float | None  # epoch seconds


class Editorial:
    """Rules resolved against one index state (article ids -> int ids), ready to apply.

    ``sections_of`` / ``times_of`` read candidates' case-folded sections and
    publication times; ``latest(section, n)`` the newest ids of a section.
    """

    def __init__(
        self,
        rules: Rules,
        int_ids: Mapping[str, int],
        *,
        sections_of: Any,
        times_of: Any,
        latest: Any,
    ) -> None:
        self.rules = rules
        self._sections_of = sections_of
        self._times_of = times_of
        self._latest = latest
        self.blocked: dict[int, set[int]] = {}
        for a, b in rules.blocked_pairs:
            if a in int_ids and b in int_ids:
                self.blocked.setdefault(int_ids[a], set()).add(int_ids[b])
                self.blocked.setdefault(int_ids[b], set()).add(int_ids[a])
        self.pinned = {
            int_ids[aid]: [int_ids[p] for p in pins if p in int_ids]
            for aid, pins in rules.pinned.items()
            if aid in int_ids
        }

    def allowed(self, query: QueryStory, ids: np.ndarray) -> np.ndarray | None:
        """Which candidates the rules let into ``query``'s list (None: all of them)."""
        rules = self.rules
        if not rules.filters_candidates or not len(ids):
            return None
        mask = np.ones(len(ids), dtype=bool)
        blocked = self.blocked.get(query.int_id) if query.int_id is not None else None
        if blocked:
            mask &= ~np.isin(ids, np.fromiter(blocked, dtype=np.int64))
        banned = rules.banned_sections(query.section)
        sections = self._sections_of(ids) if banned or rules.recency_days else None
        if banned:
            mask &= ~np.isin(sections.astype(str), sorted(banned))  # type: ignore[union-attr]
        if rules.recency_days and query.time is not None:
            assert sections is not None
            windows = {s: rules.window_seconds(s) for s in set(sections.tolist())}
            limit = np.array([windows[s] or np.inf for s in sections.tolist()])
            apart = np.abs(self._times_of(ids) - query.time)
            with np.errstate(invalid="ignore"):
                # Undated candidates (NaN) never pass a window; no window passes all.
                mask &= np.isinf(limit) | (apart <= limit)
        return mask

    def finish(
        self,
        query: QueryStory,
        hits: list[tuple[int, float]],
        k: int,
        *,
        passes: Any = None,
    ) -> list[tuple[int, float]]:
        """Minimum score (with its fallback), then pins first, cut to ``k``.

        ``passes(ids) -> bool mask`` is the query's filters, for backfilled items.
        """
        minimum = self.rules.min_score
        if minimum is not None:
            # Compared as shown (Match rounds scores), so a threshold copied from a list holds.
            hits = [h for h in hits if round(h[1], 6) >= minimum.score]
            if len(hits) < minimum.min_items:
                hits = (
                    []
                    if minimum.fallback == "nothing"
                    else hits + self._backfill(query, hits, k, passes)
                )
        pins = self.pinned.get(query.int_id, []) if query.int_id is not None else []
        if pins:
            scores = dict(hits)
            pinned = [(p, scores.get(p, 0.0)) for p in pins if passes is None or passes([p])[0]]
            hits = pinned + [h for h in hits if h[0] not in set(pins)]
        return hits[:k]

    def _backfill(
        self, query: QueryStory, hits: list[tuple[int, float]], k: int, passes: Any
    ) -> list[tuple[int, float]]:
        """The newest articles of the query's section that pass every other rule (score 0)."""
        want = k - len(hits)
        if want <= 0:
            return []
        taken = {i for i, _ in hits} | ({query.int_id} if query.int_id is not None else set())
        ids = np.array(
            [i for i in self._latest(query.section or None, 4 * k + len(taken)) if i not in taken],
            dtype=np.int64,
        )
        if not len(ids):
            return []
        mask = self.allowed(query, ids)
        if mask is not None:
            ids = ids[mask]
        if passes is not None and len(ids):
            ids = ids[passes(ids)]
        return [(int(i), 0.0) for i in ids[:want]]
