"""The ranking's weights learned from readers' clicks, corrected for position bias (issue 21).

Readers click what they see first, so a click at position 1 says less about a match than one
at position 8, and a model fitted to raw clicks learns the order it was shown, not what
readers wanted. The log of impressions and clicks (``POST /v1/events``) is read through the
position-based click model: an item is clicked when it is examined, with a probability that
depends only on its position, and found relevant, with a probability ``sigmoid(w . s + b)``
of its pair's three ranking signals ``s`` (:func:`~recommender.ranking.scoring.signal_parts`:
the dense and the lexical symmetric z, and the time prior at weight 1) and an offset ``b`` of
its list's own (only differences within a list decide its order). Both are fitted
together by regression EM (Wang et al., *Position Bias Estimation for Unbiased Learning to
Rank in Personal Search*, WSDM 2018): the E-step splits each unclicked impression into "not
examined" and "examined, not relevant", the M-step re-estimates each position's examination
and the signals' weights (a logistic regression on the soft labels). Divided by the dense
side's weight, the others are the ranking's ``lexical_weight`` and ``time_weight``.

It reports and never changes the ranking: the learned weights are scored against the index's
own on clicks they were not fitted to (five folds, by article: an article's impressions all
fall in one fold), and ``recommender report --weights`` prints the bucket that would A/B test
them. Deterministic: the same events give the same weights (the folds are drawn from a seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from recommender.index.events import ShownCell
from recommender.index.state import IndexState
from recommender.ranking.retrieval import Retriever
from recommender.ranking.scoring import RankingConfig, signal_parts

__all__ = [
    "MIN_CLICKS",
    "ClickModel",
    "ClickWeights",
    "Clicks",
    "click_weights",
    "fit_click_model",
    "relative_weights",
    "shown_clicks",
]

#: Fewer clicks than this give weights that mean nothing: none are learned.
MIN_CLICKS = 50
#: Positions with an examination estimate of their own; lower positions share the last.
POSITIONS = 20
_FOLDS = 5
_STEPS = 200
#: Newton steps per M-step (EM needs an improvement, not the optimum).
_NEWTON = 5
_TOLERANCE = 1e-7
#: L2 penalty on the signals' weights and on the lists' offsets about their mean (one
#: pseudo-impression's worth): keeps what the clicks cannot tell finite.
_RIDGE = 1.0
_SIGNALS = ("dense", "lexical_weight", "time_weight")


@dataclass(frozen=True)
class Clicks:
    """Impressions and clicks per shown item, aligned: its pair's ranking ``signals``, its
    ``position`` (1 first) and its ``list`` (0..n-1: whose related list showed it)."""

    signals: np.ndarray
    positions: np.ndarray
    lists: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray

    def __getitem__(self, rows: np.ndarray) -> Clicks:
        """The rows picked, their lists numbered again from 0."""
        lists = np.unique(self.lists[rows], return_inverse=True)[1]
        return Clicks(self.signals[rows], self.positions[rows], lists.ravel(),
                      self.impressions[rows], self.clicks[rows])  # fmt: skip

    @property
    def n_lists(self) -> int:
        return int(self.lists.max()) + 1 if len(self.lists) else 0


@dataclass(frozen=True)
class ClickModel:
    """A fitted position-based click model: the signals' weights, each list's own offset
    (how much is clicked under that article at all), and each position's examination
    probability (position 1 first)."""

    weights: np.ndarray
    offsets: np.ndarray
    examination: np.ndarray

    def probabilities(self, clicks: Clicks) -> np.ndarray:
        """Each shown item's click probability."""
        out: np.ndarray = _relevance(clicks, self.weights, self.offsets)
        out *= self.examination[_slot(clicks.positions)]
        return out


@dataclass(frozen=True)
class ClickWeights:
    """What the clicks say about the ranking's weights; ``learned`` None with a ``reason``
    when they say nothing usable."""

    impressions: int
    clicks: int
    #: Distinct (article, related item, position) cells read.
    cells: int
    #: Cells left out: the article or the related item is no longer in the index.
    unknown: int
    #: The index's own weights (the default ranking's).
    current: dict[str, float]
    #: ``time_weight`` is missing when no clicked-on pair had dates on both sides.
    learned: dict[str, float] | None = None
    #: The weights learned on each fold's other four fifths (how stable they are).
    folds: tuple[dict[str, float], ...] = ()
    #: Examination probability by position, relative to position 1.
    examination: tuple[float, ...] = ()
    #: Mean log-likelihood per held-out impression of the clicks under the learned weights
    #: and under the current ones (each with its own fitted position bias).
    held_out: dict[str, float] | None = None
    reason: str | None = None

    @property
    def better(self) -> bool:
        """Whether the learned weights predict held-out clicks better than the current ones."""
        held = self.held_out
        return self.learned is not None and held is not None and held["learned"] > held["current"]

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "better": self.better}


def click_weights(
    state: IndexState, config: RankingConfig, cells: Sequence[ShownCell], *, seed: int = 0
) -> ClickWeights:
    """The weights the clicks of ``cells`` learn for ``config``'s ranking of ``state``."""
    data, unknown = shown_clicks(state, config, cells)
    current = {"lexical_weight": config.lexical_weight, "time_weight": config.time_weight}
    found = ClickWeights(
        impressions=int(data.impressions.sum()), clicks=int(data.clicks.sum()),
        cells=len(cells), unknown=unknown, current=current,
    )  # fmt: skip
    if config.method != "hybrid" or config.fusion != "symmetric-z":
        return _without(
            found,
            f"the index ranks by method {config.method!r}, fusion {config.fusion!r}; weights "
            "are learned for the default hybrid ranking (symmetric-z fusion) only",
        )
    if found.clicks < MIN_CLICKS or data.n_lists < _FOLDS:
        return _without(
            found,
            f"{found.clicks} clicks on {data.n_lists} articles; at least "
            f"{MIN_CLICKS} clicks on {_FOLDS} articles are needed",
        )
    model = fit_click_model(data)
    learned = relative_weights(model.weights)
    if learned is None:
        return _without(found, "clicks do not rise with the dense score: no weights to learn")
    folds, held_out = _held_out(data, config, np.random.default_rng(seed))
    return ClickWeights(
        **{**asdict(found), "learned": learned, "folds": folds, "held_out": held_out,
           "examination": _examination(model, data.positions)},
    )  # fmt: skip


def shown_clicks(
    state: IndexState, config: RankingConfig, cells: Sequence[ShownCell]
) -> tuple[Clicks, int]:
    """The cells whose article and related item are both still indexed, with their pairs'
    signals (:func:`pair_signals`; without the time prior's when no pair is dated), and how
    many cells were left out."""
    known = state.catalog.int_ids({c.article_id for c in cells} | {c.related_id for c in cells})
    usable = [c for c in cells if c.article_id in known and c.related_id in known]
    articles = np.array([known[c.article_id] for c in usable], dtype=np.int64)
    related = np.array([known[c.related_id] for c in usable], dtype=np.int64)
    signals = pair_signals(state, config, articles, related) if usable else np.zeros((0, 3))
    if not signals[:, 2].any():  # no dated pair: the clicks say nothing of the time prior
        signals = signals[:, :2]
    data = Clicks(
        signals,
        np.array([c.position for c in usable], dtype=np.int64),
        np.unique(articles, return_inverse=True)[1].ravel(),
        np.array([c.impressions for c in usable], dtype=np.float64),
        np.array([c.clicks for c in usable], dtype=np.float64),
    )
    return data, len(cells) - len(usable)


def pair_signals(
    state: IndexState, config: RankingConfig, queries: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """Each (query, candidate) pair's ranking signals, as the query's list scores them when
    its side is standardised by its stored statistics (stored lists do; otherwise its pool's
    own, which are the same at build time)."""
    pairs = Retriever(state.store, state.lexical).pairs(
        queries, candidates, max_query_terms=config.max_query_terms
    )
    pairs.stats = state.pool_stats(candidates)
    pairs.query_stats = state.pool_stats(queries)
    pairs.published = state.published(candidates, lead_dates=config.lead_dates)
    pairs.years = state.years(candidates, lead_dates=config.lead_dates)
    times = state.published(queries, lead_dates=config.lead_dates)
    years = state.years(queries, lead_dates=config.lead_dates)
    return signal_parts(pairs, config, query_times=times, query_years=years)


def fit_click_model(
    data: Clicks, *, position_bias: bool = True, fixed: ClickModel | None = None
) -> ClickModel:
    """The position-based click model fitted by regression EM (module docstring), with an
    offset per list: only differences within a list decide its order, so the weights are
    learned from those, not from how much one article's readers click at all.
    ``position_bias=False`` fits the clicks as if every position were examined alike;
    ``fixed`` keeps its weights and examination and fits the offsets alone (held-out lists)."""
    slots = _slot(data.positions)
    weights = np.zeros(data.signals.shape[1]) if fixed is None else fixed.weights
    offsets = np.zeros(data.n_lists)
    examination = np.ones(POSITIONS) if fixed is None else fixed.examination
    if position_bias and fixed is None:  # start from each position's click-through
        ctr = _per_slot(slots, data.clicks) / np.maximum(_per_slot(slots, data.impressions), 1.0)
        examination = np.clip(ctr / max(ctr.max(), 1e-12), 0.05, 1.0)
    unclicked = data.impressions - data.clicks
    previous = -np.inf
    for _ in range(_STEPS):
        relevant = _relevance(data, weights, offsets)
        seen = examination[slots]
        rest = np.maximum(1.0 - seen * relevant, 1e-12)
        if position_bias and fixed is None:
            examined = data.clicks + unclicked * seen * (1.0 - relevant) / rest
            examination = np.clip(
                _per_slot(slots, examined) / np.maximum(_per_slot(slots, data.impressions), 1e-12),
                1e-6, 1.0,
            )  # fmt: skip
        positives = data.clicks + unclicked * (1.0 - seen) * relevant / rest
        weights, offsets = _logistic(data, positives, weights, offsets, fit_weights=fixed is None)
        fit = log_likelihood(ClickModel(weights, offsets, examination), data)
        if fit - previous < _TOLERANCE * max(1.0, abs(fit)):
            break
        previous = fit
    return ClickModel(weights.copy(), offsets, examination.copy())


def log_likelihood(model: ClickModel, data: Clicks) -> float:
    """The clicks' log-likelihood under ``model`` (binomial per shown item)."""
    p = np.clip(model.probabilities(data), 1e-12, 1.0 - 1e-12)
    return float((data.clicks * np.log(p) + (data.impressions - data.clicks) * np.log1p(-p)).sum())


def _held_out(
    data: Clicks, config: RankingConfig, rng: np.random.Generator
) -> tuple[tuple[dict[str, float], ...], dict[str, float]]:
    """Each fold's learned weights, and the held-out log-likelihood per impression of the
    learned weights against the current ones (their fixed mix, its scale fitted). A held-out
    list's own offset is fitted on it under each model alike: the weights are what is judged."""
    fold = rng.permutation(data.n_lists)[data.lists] % _FOLDS
    mix = np.array([1.0, config.lexical_weight, config.time_weight])[: data.signals.shape[1]]
    current = replace(data, signals=(data.signals @ mix)[:, None])
    totals = {"learned": 0.0, "current": 0.0}
    folds: list[dict[str, float]] = []
    for k in range(_FOLDS):
        train, test = fold != k, fold == k
        for name, view in (("learned", data), ("current", current)):
            model = fit_click_model(view[train])
            if name == "learned":
                folds.append(relative_weights(model.weights) or {})
            held = fit_click_model(view[test], fixed=model)
            totals[name] += log_likelihood(held, view[test])
    n = float(data.impressions.sum())
    return tuple(folds), {name: total / n for name, total in totals.items()}


def relative_weights(weights: np.ndarray) -> dict[str, float] | None:
    """The lexical and time weights relative to the dense side's (None when it is not > 0)."""
    if weights[0] <= 1e-9:
        return None
    names = _SIGNALS[1 : len(weights)]
    return {name: float(w / weights[0]) for name, w in zip(names, weights[1:], strict=True)}


def _examination(model: ClickModel, positions: np.ndarray) -> tuple[float, ...]:
    """Each shown position's examination, relative to position 1."""
    shown = min(int(positions.max()), POSITIONS)
    return tuple(float(e) for e in model.examination[:shown] / model.examination[0])


def _without(found: ClickWeights, reason: str) -> ClickWeights:
    return ClickWeights(**{**asdict(found), "reason": reason})


def _relevance(data: Clicks, weights: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    z = data.signals @ weights + offsets[data.lists]
    out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
    return out


def _slot(positions: np.ndarray) -> np.ndarray:
    return np.minimum(np.asarray(positions, dtype=np.int64), POSITIONS) - 1


def _per_slot(slots: np.ndarray, values: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.bincount(slots, weights=values, minlength=POSITIONS)
    return out


def _logistic(
    data: Clicks,
    positives: np.ndarray,
    weights: np.ndarray,
    offsets: np.ndarray,
    *,
    fit_weights: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Newton steps of a weighted logistic regression (``positives`` of the impressions per
    row), alternating: each list's offset (shrunk towards their mean, so that a list with no
    click stays finite), then the signals' weights (ridge-penalised)."""
    totals, lists, x = data.impressions, data.lists, data.signals
    for _ in range(_NEWTON):
        p = _relevance(data, weights, offsets)
        curvature = totals * p * (1.0 - p)
        gradient = np.bincount(lists, positives - totals * p, minlength=len(offsets))
        gradient -= _RIDGE * (offsets - offsets.mean())
        move = gradient / (np.bincount(lists, curvature, minlength=len(offsets)) + _RIDGE)
        offsets = offsets + move
        step = np.zeros_like(weights)
        if fit_weights:
            p = _relevance(data, weights, offsets)
            gradient = x.T @ (positives - totals * p) - _RIDGE * weights
            hessian = (x * (totals * p * (1.0 - p))[:, None]).T @ x + _RIDGE * np.eye(len(weights))
            step = np.linalg.solve(hessian, gradient)
            weights = weights + step
        if max(np.abs(move).max(initial=0.0), np.abs(step).max(initial=0.0)) < 1e-8:
            break
    return weights, offsets
