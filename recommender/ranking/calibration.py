"""The time prior estimated from the archive itself, without labels (opt-in); and
:func:`calibrate`, which an index's build, its quarter-growth refresh and `recommender
calibrate` go through to estimate that and the lexical weight
(:mod:`recommender.ranking.fusion_weight`) together.

How much a small date gap says "same story" differs by archive (a celebrity's rehab is
covered for days, a trial for months), so the prior's curve is estimated per index from the
archive's own candidate pairs: every sampled article's top candidates, ranked without a time
prior. Each pair is seen through two views that are independent given whether it is one
story: its content score and its date gap. A two-class latent model (EM) fits both at once:
the content score as two normal distributions with one spread, the gap as two histograms over
log-spaced bins. Its estimates, in log-odds:

    log P(same | score, gap) / P(other | score, gap)
        = const + separation * score + log [P(gap | same) / P(gap | other)]

so ranking by the fused score plus ``log-ratio(gap) / separation`` is ranking by the
probability that the pair is one story: the prior's curve is the gap's log-likelihood ratio
in the score's own units, made non-increasing with the gap (isotonic; a longer gap never says
"more likely the same story"). On ecbplus and basil the estimated class share, separation and
curve come within a few percent of what the labels give; ranked by it, though, the corpora
gain less than with a fixed, stronger prior, so it is not the default (docs/relevance.md).

Deterministic: a fixed sample of query articles (seeded) and a fixed number of EM steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from recommender.filters import Filters
from recommender.index.live import LiveIndex
from recommender.index.state import IndexState
from recommender.ranking.fusion_weight import (
    FusionWeight,
    estimate_fusion_weight,
    fusion_weighted,
)
from recommender.ranking.ranker import Ranker
from recommender.ranking.retrieval import QueryBatch
from recommender.ranking.scoring import RankingConfig

__all__ = [
    "Calibration",
    "StoryModel",
    "TimeCalibration",
    "asks_for_time_prior",
    "calibrate",
    "calibrate_time",
    "calibrated",
    "recalibrate",
    "recalibrated",
    "story_model",
]

#: Gap bins in days (log-spaced), and the knot of each bin's curve value.
_EDGES = np.array([0.0, 0.5, 1.5, 3.0, 7.0, 14.0, 30.0, 60.0, 120.0, 365.0, np.inf])
_KNOTS = (0.25, 1.0, 2.1, 4.6, 9.9, 20.5, 42.4, 84.9, 209.0, 730.0)
#: Query articles sampled (all below this), candidates kept per query, EM steps.
_QUERIES = 2_000
_TOP = 30
_STEPS = 200
#: Fewer dated pairs than this, or a fit that finds no second class, keeps the fixed prior.
_MIN_PAIRS = 300
_SEED = 20


@dataclass(frozen=True)
class TimeCalibration:
    """What the estimate found; ``curve`` is None when it kept the fixed prior (``reason``)."""

    curve: tuple[tuple[float, float], ...] | None
    #: Candidate pairs read, and those with both dates (the ones that inform the prior).
    pairs: int
    dated_pairs: int
    #: Estimated share of same-story pairs among the dated ones, and the separation: log-odds
    #: per unit of fused score (how much one unit of score says about "same story").
    same_story_share: float | None = None
    separation: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["curve"] = None if self.curve is None else [list(knot) for knot in self.curve]
        return data


@dataclass(frozen=True)
class Calibration:
    """One calibration's estimates; None where that part was not estimated."""

    #: The lexical side's weight (:mod:`recommender.ranking.fusion_weight`).
    fusion: FusionWeight | None = None
    time: TimeCalibration | None = None

    def to_dict(self) -> dict[str, Any]:
        parts = {"fusion": self.fusion, "time": self.time}
        return {name: part.to_dict() for name, part in parts.items() if part is not None}


def calibrate(
    state: IndexState, ranker: Ranker, config: RankingConfig, *, fusion: bool, time: bool
) -> tuple[RankingConfig, Calibration]:
    """``config`` with what the archive in ``state`` estimates: the lexical weight
    (``fusion``, where the ranking adds standardised sides) and then, with that weight, the
    time prior's curve (``time``, where the prior is on)."""
    # The weight is estimated for a fusion that adds standardised sides.
    weight = estimate_fusion_weight(state, config) if fusion and config.standardised else None
    if weight is not None:
        config = fusion_weighted(config, weight)
    found = calibrate_time(state, ranker, config) if time and config.time_weight else None
    if found is not None:
        config = calibrated(config, found)
    return config, Calibration(weight, found)


def recalibrated(
    state: IndexState,
    ranker: Ranker,
    manifest: dict[str, Any],
    *,
    fusion: bool | None = None,
    time: bool | None = None,
) -> tuple[dict[str, Any], Calibration]:
    """``manifest`` with what the archive in ``state`` estimates again, and the estimates.
    ``fusion``, ``time``: whether to estimate the lexical weight and the time prior's curve;
    None (a quarter's growth) re-estimates what the index already estimates: the weight
    where it was estimated before, the curve where the index asks for one
    (:func:`asks_for_time_prior`). Unchanged when there is nothing to estimate."""
    config = RankingConfig.from_dict(manifest.get("ranking"))
    fusion = "fusion" in manifest.get("calibration", {}) if fusion is None else fusion
    time = asks_for_time_prior(manifest) if time is None else time
    if not fusion and not time:
        return manifest, Calibration()
    config, found = calibrate(state, ranker, config, fusion=fusion, time=time)
    calibration = {**manifest.get("calibration", {}), **found.to_dict()}
    return {**manifest, "ranking": config.to_dict(), "calibration": calibration}, found


def asks_for_time_prior(manifest: dict[str, Any]) -> bool:
    """Whether the index in ``manifest`` asked for its time prior estimated from the archive:
    it ranks by an estimated curve, or one was asked for (``build --calibrate``, ``calibrate
    --time``) when the archive had too few dated pairs for it, so a larger archive tries again.
    The estimate is opt-in (it is not the default ranking): nothing else turns it on."""
    config = RankingConfig.from_dict(manifest.get("ranking"))
    return config.time_curve is not None or "time" in manifest.get("calibration", {})


def calibrated(config: RankingConfig, found: TimeCalibration) -> RankingConfig:
    """``config`` with the estimated curve as its time prior (unchanged when none was found)."""
    return config if found.curve is None else replace(config, time_curve=found.curve)


def calibrate_time(
    state: IndexState, ranker: Ranker, config: RankingConfig, *, batch_size: int = 256
) -> TimeCalibration:
    """Estimate the time prior's curve for the index in ``state`` (see the module's docstring)."""
    scores, gaps = _candidate_pairs(state, ranker, config, batch_size)
    dated = np.isfinite(gaps)
    pairs, dated_pairs = len(scores), int(dated.sum())
    if dated_pairs < _MIN_PAIRS:
        reason = f"{dated_pairs} candidate pairs have both dates; {_MIN_PAIRS} are needed"
        return TimeCalibration(None, pairs, dated_pairs, reason=reason)
    model = _fit(scores[dated], _bins(gaps[dated]), len(_KNOTS))
    share, separation, ratio, weights = model.share, model.separation, model.ratio, model.weights
    if separation <= 0 or not 0.001 < share < 0.999:
        reason = "the pairs show no second class of scores and gaps"
        return TimeCalibration(None, pairs, dated_pairs, share, separation, reason)
    values = _non_increasing(ratio / separation, weights)
    curve = tuple((knot, round(float(v), 4)) for knot, v in zip(_KNOTS, values, strict=True))
    return TimeCalibration(curve, pairs, dated_pairs, round(share, 4), round(separation, 4))


def _candidate_pairs(
    state: IndexState, ranker: Ranker, config: RankingConfig, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fused scores (no time prior) and date gaps in days of sampled articles' top candidates."""
    ids = np.sort(np.asarray(state.lexical.ids, dtype=np.int64))
    if len(ids) > _QUERIES:
        ids = np.sort(np.random.default_rng(_SEED).choice(ids, _QUERIES, replace=False))
    plain = replace(config, time_weight=0.0, time_curve=None, diversity=0.0)
    plain = replace(plain, dedupe_threshold=None, feedback_docs=0, story_first=False)
    scores: list[float] = []
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        batch = QueryBatch.of_articles(state.store, state.lexical, chunk)
        ranked = ranker.hits(state, batch, _TOP, Filters(), plain, rules=False)
        for query, hits in zip(chunk.tolist(), ranked, strict=True):
            pairs.extend((query, hit) for hit, _ in hits)
            scores.extend(score for _, score in hits)
    if not pairs:
        return np.zeros(0), np.zeros(0)
    left, right = np.array(pairs, dtype=np.int64).T
    lead = config.lead_dates
    gap = np.abs(state.published(left, lead_dates=lead) - state.published(right, lead_dates=lead))
    return np.array(scores, dtype=np.float64), gap / 86_400.0


def _bins(gaps: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(_EDGES, gaps, side="right") - 1, 0, len(_KNOTS) - 1)


@dataclass(frozen=True)
class _Model:
    """The two-class model's estimates: share of one-story pairs, their mean score and the
    others', the shared variance, and the gap's log-likelihood ratio and pair count per bin."""

    share: float
    mean_same: float
    mean_other: float
    variance: float
    ratio: np.ndarray
    weights: np.ndarray
    #: Pairs the model calls one story (more likely than not), per bin.
    same_counts: np.ndarray

    @property
    def separation(self) -> float:
        """Log-odds of "one story" per unit of score."""
        return (self.mean_same - self.mean_other) / self.variance


#: Dated pairs needed to fit the scores' shape to them alone (:func:`story_model`): fewer
#: leave it to all pairs, as with none.
_MIN_DATED = 100
#: The share of one-story pairs whose gap a story may span: a gap that fewer than one in a
#: thousand of the pairs the model calls one story reach on the archive is implausible.
_SPAN_QUANTILE = 0.999


@dataclass(frozen=True)
class StoryModel:
    """The archive's two-class model of its scored pairs, in log-odds of "one story".

    ``span_days``: the date gap under which :data:`_SPAN_QUANTILE` of the dated pairs the
    model calls one story fall; a story spanning more is implausible on this archive. Stored
    with the stories it grouped, to place later articles the same way.
    """

    prior: float
    separation: float
    middle: float
    #: Gap log-likelihood ratio per bin, the last for an unknown gap.
    ratio: tuple[float, ...]
    span_days: float

    def log_odds(self, scores: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """Each pair's log-odds of being one story (``gaps`` in days; NaN: unknown)."""
        gaps = np.asarray(gaps, dtype=np.float64)
        bins = np.where(np.isfinite(gaps), _bins(np.nan_to_num(gaps)), len(_KNOTS))
        ratio = np.asarray(self.ratio)
        odds: np.ndarray = self.prior + self.separation * (np.asarray(scores) - self.middle)
        odds = odds + ratio[bins]
        return odds

    def disagreement(self, other: StoryModel, scores: np.ndarray, gaps: np.ndarray) -> float:
        """The share of these pairs that ``other`` puts on the other side of even odds."""
        if not len(scores):
            return 0.0
        ours = self.log_odds(scores, gaps) >= 0
        return float(np.mean(ours != (other.log_odds(scores, gaps) >= 0)))

    @property
    def unpaired(self) -> float:
        """The log-odds of a pair scoring 0 with no known gap (a pair no list holds)."""
        return self.prior - self.separation * self.middle + self.ratio[-1]

    @property
    def cut(self) -> float:
        """The score at which a pair with no known gap is as likely one story as not."""
        return self.middle - (self.prior + self.ratio[-1]) / self.separation

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": list(self.ratio)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoryModel:
        return cls(
            float(data["prior"]), float(data["separation"]), float(data["middle"]),
            tuple(float(r) for r in data["ratio"]), float(data["span_days"]),
        )  # fmt: skip


def story_model(scores: np.ndarray, gaps: np.ndarray) -> StoryModel | None:
    """The two-class model fitted to these pairs' ``scores`` and date ``gaps`` (days; NaN:
    unknown, a bin of its own); None when it finds no second class (nothing is one story).

    Where some pairs are dated and others not, the scores' two normals are fitted to the
    dated pairs, and only the share of one-story pairs and the gap ratios to all of them:
    where the gap is known it is a second, independent view of each pair, which pins down
    what a one-story pair's score looks like; the score alone, two normals fitted to a
    skewed mixture, does not (on ecbplus, 22% of its pairs dated: B-cubed F1 0.895 -> 0.954,
    docs/relevance.md)."""
    if len(scores) < 2:
        return None
    known = np.isfinite(gaps)
    bins = np.where(known, _bins(np.nan_to_num(gaps)), len(_KNOTS))
    model = _fit(scores, bins, len(_KNOTS) + 1, shape=_dated_shape(scores, bins, known))
    if model.separation <= 0 or not 0.0 < model.share < 1.0:
        return None
    dated = model.same_counts[: len(_KNOTS)]
    span = np.inf
    if dated.sum() > 0:
        last = int(np.searchsorted(np.cumsum(dated) / dated.sum(), _SPAN_QUANTILE))
        span = float(_EDGES[min(last, len(_KNOTS) - 1) + 1])
    return StoryModel(
        prior=float(np.log(model.share / (1.0 - model.share))),
        separation=model.separation,
        middle=(model.mean_same + model.mean_other) / 2.0,
        ratio=tuple(float(r) for r in model.ratio),
        span_days=span,
    )


def _dated_shape(
    scores: np.ndarray, bins: np.ndarray, dated: np.ndarray
) -> tuple[float, float, float] | None:
    """The one-story and other pairs' mean score and their variance, fitted to the dated
    pairs alone; None when all pairs or fewer than :data:`_MIN_DATED` are dated, or when
    those find no second class."""
    if dated.all() or dated.sum() < _MIN_DATED:
        return None
    fit = _fit(scores[dated], bins[dated], len(_KNOTS) + 1)
    if fit.separation <= 0 or not 0.0 < fit.share < 1.0:
        return None
    return fit.mean_same, fit.mean_other, fit.variance


def _fit(
    scores: np.ndarray,
    bins: np.ndarray,
    n_bins: int,
    *,
    shape: tuple[float, float, float] | None = None,
) -> _Model:
    """EM of the two-class model (scores: two normals, one variance; bins: two histograms);
    ``shape`` fixes the two means and the variance (only the share and the gap ratios move)."""
    # Start from "the top tenth of scores is one story": EM moves it from there.
    spread = float(scores.std()) or 1.0
    same = 1.0 / (1.0 + np.exp(-(scores - np.quantile(scores, 0.9)) / spread))
    share = mean_same = mean_other = variance = 0.0
    ratio = np.zeros(n_bins)
    for _ in range(_STEPS):
        share = min(max(float(same.mean()), 1e-9), 1.0 - 1e-9)
        other = 1.0 - same
        if shape is not None:
            mean_same, mean_other, variance = shape
        else:
            mean_same = float((same * scores).sum() / max(same.sum(), 1e-12))
            mean_other = float((other * scores).sum() / max(other.sum(), 1e-12))
            variance = max(
                float(
                    ((same * (scores - mean_same) ** 2).sum()
                     + (other * (scores - mean_other) ** 2).sum()) / len(scores)
                ),
                1e-12,
            )  # fmt: skip
        # One pseudo-pair per bin and class: an empty bin gets a ratio near 0, not infinity.
        gap_same = np.bincount(bins, weights=same, minlength=n_bins) + 1.0
        gap_other = np.bincount(bins, weights=other, minlength=n_bins) + 1.0
        ratio = np.log(gap_same / gap_same.sum()) - np.log(gap_other / gap_other.sum())
        odds = (
            np.log(share / (1.0 - share))
            + ((scores - mean_other) ** 2 - (scores - mean_same) ** 2) / (2.0 * variance)
            + ratio[bins]
        )
        same = 1.0 / (1.0 + np.exp(-np.clip(odds, -50.0, 50.0)))
    weights = np.bincount(bins, minlength=n_bins).astype(np.float64) + 1.0
    same_counts = np.bincount(bins, weights=(same > 0.5).astype(np.float64), minlength=n_bins)
    return _Model(share, mean_same, mean_other, variance, ratio, weights, same_counts)


def _non_increasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The closest non-increasing sequence (weighted least squares): pool adjacent violators."""
    from sklearn.isotonic import IsotonicRegression

    fitted: np.ndarray = IsotonicRegression(increasing=False).fit_transform(
        np.arange(len(values)), values, sample_weight=weights
    )
    return fitted


def recalibrate(index: LiveIndex, ranker: Ranker, *, time: bool | None = None) -> Calibration:
    """Estimate the live index's lexical weight, and its time prior, again and publish them in
    its manifest. ``time``: True estimates the prior (and ranks by it from now on), False
    leaves it as it is, None estimates it again only where the index already asks for it
    (:func:`asks_for_time_prior`), as a quarter's growth does.

    Holds the writer lock. Stored lists were ranked with the old values: they are marked
    stale (``related --all --store-lists`` recomputes them).
    """
    with index.layout.writer_lock():
        index.refresh()
        manifest, found = recalibrated(
            index.state, ranker, dict(index.manifest), fusion=True, time=time
        )
        if index.state.catalog.lists_info() is not None:
            index.state.catalog.mark_lists_stale("the ranking was calibrated again")
        with index.lock.write():
            index.set_manifest(manifest)
    return found
