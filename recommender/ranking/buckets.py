"""A/B buckets: named ranking configurations of an index, stored in its manifest.

A bucket holds only the options it changes; it ranks with those over the index's
default ranking (the manifest's ``ranking`` section), so a later change of the
default reaches every bucket that does not override it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recommender.errors import InvalidArgumentError
from recommender.index.live import LiveIndex
from recommender.ranking.scoring import RankingConfig

__all__ = [
    "bucket_ranking",
    "bucket_rankings",
    "check_bucket",
    "default_ranking",
    "set_bucket",
    "with_bucket",
]

#: The last manifest ranking section read and its config: every request asks for it.
_DEFAULT: tuple[Any, RankingConfig] = (None, RankingConfig.from_dict(None))


def default_ranking(manifest: Mapping[str, Any]) -> RankingConfig:
    """The index's default ranking: the manifest's ``ranking`` section."""
    global _DEFAULT
    section = manifest.get("ranking")
    cached = _DEFAULT
    # A manifest is replaced whole on every change, never edited in place, so a section
    # that is the same object is the same ranking.
    if cached[0] is not section:
        cached = _DEFAULT = (section, RankingConfig.from_dict(section))
    return cached[1]


def bucket_rankings(manifest: Mapping[str, Any]) -> dict[str, RankingConfig]:
    """Every named ranking configuration of the index, by name."""
    base = manifest.get("ranking") or {}
    named = manifest.get("buckets") or {}
    return {name: RankingConfig.from_dict({**base, **opts}) for name, opts in named.items()}


def bucket_ranking(manifest: Mapping[str, Any], bucket: str) -> RankingConfig:
    """The ranking of the bucket named ``bucket``; an unknown name is a bad argument."""
    buckets = bucket_rankings(manifest)
    if bucket not in buckets:
        raise InvalidArgumentError(
            f"unknown bucket {bucket!r}; this index has {sorted(buckets) or 'none'}"
            " (add one with 'recommender buckets set')"
        )
    return buckets[bucket]


def check_bucket(manifest: Mapping[str, Any], name: str, options: Mapping[str, Any] | None) -> None:
    """Raise :class:`InvalidArgumentError` unless ``name`` and ``options`` make a bucket."""
    if not name or not name.strip():
        raise InvalidArgumentError("a bucket needs a non-empty name")
    if options is None:
        return
    RankingConfig.from_dict({**(manifest.get("ranking") or {}), **options})
    known = sorted(RankingConfig().to_dict())
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise InvalidArgumentError(
            f"unknown ranking option {unknown[0]!r}; expected one of {known}"
        )


def with_bucket(
    manifest: Mapping[str, Any], name: str, options: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A copy of ``manifest`` with bucket ``name`` set to ``options`` (removed for None)."""
    out = dict(manifest)
    buckets = dict(out.get("buckets") or {})
    if options is None:
        buckets.pop(name, None)
    else:
        buckets[name] = dict(options)
    out["buckets"] = buckets
    return out


def set_bucket(index: LiveIndex, name: str, options: Mapping[str, Any] | None) -> None:
    """Publish bucket ``name`` with ``options`` (None removes it) in the index's manifest."""
    check_bucket(index.manifest, name, options)
    with index.layout.writer_lock():
        index.refresh()
        manifest = with_bucket(index.manifest, name, options)
        with index.lock.write():
            index.set_manifest(manifest)
