"""The recommenders: collaborative (ALS), content (category and brand affinity), popularity,
their hybrid, and the category-affinity baseline the evaluation compares against.

Every strategy scores a batch of customers against the whole catalogue as a dense matrix
(customers x products; the catalogue is small next to the customers), so they share one
exclusion mask and one top-N. Why a score blend and not a rank merge: each strategy's scores are
scaled to [0, 1] per customer and summed with the configured weights, so a product that both
the collaborative model and the customer's affinities like rises above either one's favourite,
which interleaving ranks cannot express; the weights are a single knob the evaluation measures.

Exclusions (the same for every strategy, so the evaluation compares like with like): products
out of range (not in the catalogue, or no positive price), durables the customer has bought at
any time, and every product of a durable category the customer bought from within
``durable_suppression_days``. Consumables already bought stay eligible: coffee is bought again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd
import scipy.sparse as sp

from dagster_project.lib.config import RecommendationsConfig
from dagster_project.lib.recommend.inputs import RecommendInputs, is_durable

logger = logging.getLogger(__name__)

COLLABORATIVE: Final[str] = "collaborative"
CONTENT: Final[str] = "content"
POPULAR: Final[str] = "popular"
HYBRID: Final[str] = "hybrid"
#: Baseline of the evaluation only: the most popular products of the customer's categories.
CATEGORY_AFFINITY: Final[str] = "category_affinity"
#: Strategy names that appear in the customer_recommendations mart.
STRATEGIES: Final[tuple[str, ...]] = (COLLABORATIVE, CONTENT, POPULAR, HYBRID)
#: Customers scored per dense batch (batch x products float32 matrices).
BATCH: Final[int] = 4096


@dataclass
class Prepared:
    """Indexed matrices of one training window (customers x products, categories, brands)."""

    customer_ids: np.ndarray
    product_ids: np.ndarray
    eligible: np.ndarray
    item_category: sp.csr_matrix  # categories x products, one-hot
    item_brand: sp.csr_matrix  # brands x products, one-hot
    user_items: sp.csr_matrix  # customers x products, summed interaction weights
    category_share: sp.csr_matrix  # customers x categories, share of the weight
    brand_share: sp.csr_matrix  # customers x brands
    suppressed_categories: sp.csr_matrix  # customers x categories, recent durable purchases
    bought_durables: sp.csr_matrix  # customers x products, durables ever bought
    popularity: np.ndarray  # per product, scaled to [0, 1]
    has_history: np.ndarray
    notes: list[str] = field(default_factory=list)


@dataclass
class Fitted:
    """Prepared matrices with the collaborative factors (None when the model was skipped)."""

    prepared: Prepared
    user_factors: np.ndarray | None
    item_factors: np.ndarray | None
    collaborative_skipped: str | None


def _codes(values: pd.Series, universe: pd.Index) -> np.ndarray:
    return universe.get_indexer(values)


def _share(matrix: sp.csr_matrix) -> sp.csr_matrix:
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32)


def _one_hot(codes: np.ndarray, size: int) -> sp.csr_matrix:
    items = np.arange(len(codes))
    present = codes >= 0
    return sp.csr_matrix(
        (np.ones(present.sum(), dtype=np.float32), (codes[present], items[present])),
        shape=(size, len(codes)),
    )


def prepare(inputs: RecommendInputs, config: RecommendationsConfig, now: datetime) -> Prepared:
    """Index the inputs: interactions before ``now`` become weights, affinities, exclusions."""
    notes: list[str] = []
    events = inputs.interactions[inputs.interactions["occurred_at"] < pd.Timestamp(now)]
    weights = config.interaction_weights.model_dump()
    events = events.assign(weight=events["event_type"].map(weights).fillna(0.0))
    events = events[events["weight"] > 0]

    products = inputs.products
    customer_index = pd.Index(
        pd.concat([inputs.customers["customer_id"], events["customer_id"]]).unique()
    )
    product_index = pd.Index(pd.concat([products["product_id"], events["product_id"]]).unique())
    n_users, n_items = len(customer_index), len(product_index)

    catalogue = products.set_index("product_id").reindex(product_index)
    in_catalogue = product_index.isin(products["product_id"])
    price = catalogue["price"].to_numpy(dtype=float)
    eligible = in_catalogue & (np.nan_to_num(price, nan=0.0) > 0)
    out_of_range = int((~eligible).sum())
    if out_of_range:
        notes.append(f"{out_of_range} products out of range (no catalogue row or no price)")
    categories = pd.Index(catalogue["category"].dropna().unique())
    brands = pd.Index(catalogue["brand"].dropna().unique())
    item_cat_codes = _codes(catalogue["category"], categories)
    item_brand_codes = _codes(catalogue["brand"], brands)
    item_category = _one_hot(item_cat_codes, len(categories))
    item_brand = _one_hot(item_brand_codes, len(brands))
    durable_category = is_durable(pd.Series(categories, dtype=object), config).to_numpy(bool)
    item_durable = np.zeros(n_items, dtype=bool)
    known = item_cat_codes >= 0
    item_durable[known] = durable_category[item_cat_codes[known]]

    users = _codes(events["customer_id"], customer_index)
    items = _codes(events["product_id"], product_index)
    user_items = sp.csr_matrix(
        (events["weight"].to_numpy(np.float32), (users, items)), shape=(n_users, n_items)
    )
    user_items.sum_duplicates()
    category_share = _share(user_items @ item_category.T)
    brand_share = _share(user_items @ item_brand.T)

    purchase = (events["event_type"] == "purchase").to_numpy()
    bought_items = items[purchase]
    bought_users = users[purchase]
    durable_line = item_durable[bought_items]
    bought_durables = sp.csr_matrix(
        (
            np.ones(durable_line.sum(), np.float32),
            (bought_users[durable_line], bought_items[durable_line]),
        ),
        shape=(n_users, n_items),
    )
    suppress_from = pd.Timestamp(now - timedelta(days=config.durable_suppression_days))
    recent = (events["occurred_at"] >= suppress_from).to_numpy()[purchase]
    chosen = durable_line & recent
    suppressed_categories = sp.csr_matrix(
        (
            np.ones(chosen.sum(), np.float32),
            (bought_users[chosen], item_cat_codes[bought_items[chosen]]),
        ),
        shape=(n_users, len(categories)),
    )

    window_start = pd.Timestamp(now - timedelta(days=config.popularity_window_days))
    in_window = (events["occurred_at"] >= window_start).to_numpy()
    popularity = np.bincount(
        items[in_window], weights=events["weight"].to_numpy()[in_window], minlength=n_items
    )
    if popularity.sum() == 0 and len(items):
        notes.append(
            f"no interactions in the last {config.popularity_window_days} days: popularity "
            "over all history"
        )
        popularity = np.bincount(items, weights=events["weight"].to_numpy(), minlength=n_items)
    popularity = popularity.astype(np.float32)
    popularity[~eligible] = 0.0
    if popularity.max(initial=0.0) > 0:
        popularity /= popularity.max()
    has_history = np.asarray(user_items.getnnz(axis=1)).ravel() > 0
    return Prepared(
        customer_ids=customer_index.to_numpy(dtype=object),
        product_ids=product_index.to_numpy(dtype=object),
        eligible=np.asarray(eligible, dtype=bool),
        item_category=item_category,
        item_brand=item_brand,
        user_items=user_items,
        category_share=category_share,
        brand_share=brand_share,
        suppressed_categories=suppressed_categories,
        bought_durables=bought_durables,
        popularity=popularity,
        has_history=has_history,
        notes=notes,
    )


def fit(inputs: RecommendInputs, config: RecommendationsConfig, now: datetime) -> Fitted:
    """Prepare the inputs and train the ALS model on them (skipped, with a reason, when tiny)."""
    prepared = prepare(inputs, config, now)
    active = int(prepared.has_history.sum())
    interacted_items = int((np.asarray(prepared.user_items.getnnz(axis=0)).ravel() > 0).sum())
    reason = None
    if active < config.min_customers:
        reason = (
            f"{active} customers with interactions (< min_customers {config.min_customers}): "
            "no collaborative model"
        )
    elif interacted_items < 2:
        reason = f"{interacted_items} product(s) with interactions: no collaborative model"
    if reason is not None:
        logger.warning(reason)
        return Fitted(prepared, None, None, reason)
    user_factors, item_factors = _train_als(prepared.user_items, config)
    return Fitted(prepared, user_factors, item_factors, None)


def _train_als(
    user_items: sp.csr_matrix, config: RecommendationsConfig
) -> tuple[np.ndarray, np.ndarray]:
    """implicit's CPU ALS on log-scaled weights; BLAS single-threaded as implicit advises."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    confidence = user_items.copy()
    confidence.data = np.log1p(confidence.data).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=min(config.factors, max(2, min(user_items.shape) - 1)),
            regularization=config.regularization,
            alpha=config.alpha,
            iterations=config.iterations,
            num_threads=config.threads,
            random_state=config.seed,
            calculate_training_loss=False,
        )
        model.fit(confidence, show_progress=False)
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def _row_scaled(scores: np.ndarray) -> np.ndarray:
    np.maximum(scores, 0.0, out=scores)
    top = scores.max(axis=1, keepdims=True, initial=0.0)
    np.divide(scores, top, out=scores, where=top > 0)
    return scores


def score_batch(
    fitted: Fitted, rows: np.ndarray, strategy: str, config: RecommendationsConfig
) -> np.ndarray:
    """Scores (rows x products, float32) of one strategy; excluded products are -inf."""
    p = fitted.prepared
    n_items = len(p.product_ids)
    popular = np.broadcast_to(p.popularity, (len(rows), n_items))
    if strategy == POPULAR:
        scores = np.array(popular, dtype=np.float32)
    elif strategy == CATEGORY_AFFINITY:
        category = (p.category_share[rows] @ p.item_category).toarray()
        scores = (category * (0.05 + popular)).astype(np.float32)
    elif strategy == CONTENT:
        scores = _content(p, rows, popular)
    elif strategy == COLLABORATIVE:
        scores = _collaborative(fitted, rows, n_items)
    elif strategy == HYBRID:
        weights = config.weights
        scores = weights.content * _row_scaled(_content(p, rows, popular))
        scores += weights.popular * popular
        if weights.repeat:
            scores += weights.repeat * _row_scaled(p.user_items[rows].toarray())
        if fitted.user_factors is not None:
            scores += weights.collaborative * _row_scaled(_collaborative(fitted, rows, n_items))
        cold = ~p.has_history[rows]
        scores[cold] = popular[cold]
    else:
        raise ValueError(f"unknown strategy '{strategy}'")
    scores[:, ~p.eligible] = -np.inf
    suppressed = (p.suppressed_categories[rows] @ p.item_category).toarray() > 0
    suppressed |= p.bought_durables[rows].toarray() > 0
    scores[suppressed] = -np.inf
    return scores


def _content(p: Prepared, rows: np.ndarray, popular: np.ndarray) -> np.ndarray:
    category = (p.category_share[rows] @ p.item_category).toarray()
    brand = (p.brand_share[rows] @ p.item_brand).toarray()
    return ((category + 0.5 * brand) * (0.05 + popular)).astype(np.float32)


def _collaborative(fitted: Fitted, rows: np.ndarray, n_items: int) -> np.ndarray:
    if fitted.user_factors is None or fitted.item_factors is None:
        return np.zeros((len(rows), n_items), dtype=np.float32)
    return (fitted.user_factors[rows] @ fitted.item_factors.T).astype(np.float32)


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and scores of each row's best ``n`` (descending; ties by column)."""
    n = min(n, scores.shape[1])
    if n == 0:
        empty = np.zeros((scores.shape[0], 0))
        return empty.astype(np.int64), empty
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part.sort(axis=1)
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def list_strategy(fitted: Fitted, rows: np.ndarray) -> np.ndarray:
    """The strategy that produced each customer's list in the mart."""
    has_history = fitted.prepared.has_history[rows]
    with_history = HYBRID if fitted.user_factors is not None else CONTENT
    return np.where(has_history, with_history, POPULAR).astype(object)


def recommend(
    fitted: Fitted,
    config: RecommendationsConfig,
    strategy: str = HYBRID,
    rows: np.ndarray | None = None,
    n: int | None = None,
) -> pd.DataFrame:
    """Top-N per customer: customer_id, rank (1..), product_id, score, strategy.

    Only products with a positive score are listed, so a customer may get fewer than N.
    """
    p = fitted.prepared
    n = n or config.top_n
    rows = np.arange(len(p.customer_ids)) if rows is None else rows
    if len(p.product_ids) == 0 or not p.eligible.any():
        return empty_recommendations()
    parts: list[pd.DataFrame] = []
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        items, values = top_n(score_batch(fitted, batch, strategy, config), n)
        keep = np.isfinite(values) & (values > 0)
        ranks = np.cumsum(keep, axis=1)
        row_of = np.broadcast_to(np.arange(len(batch))[:, None], items.shape)
        labels = (
            list_strategy(fitted, batch)
            if strategy == HYBRID
            else np.full(len(batch), strategy, dtype=object)
        )
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": p.customer_ids[batch][row_of[keep]],
                    "rank": ranks[keep].astype(np.int32),
                    "product_id": p.product_ids[items[keep]],
                    "score": values[keep].astype(np.float64),
                    "strategy": labels[row_of[keep]],
                }
            )
        )
    if not parts:
        return empty_recommendations()
    return pd.concat(parts, ignore_index=True)


def empty_recommendations() -> pd.DataFrame:
    """A recommendations frame with no rows."""
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=object),
            "rank": pd.Series(dtype=np.int32),
            "product_id": pd.Series(dtype=object),
            "score": pd.Series(dtype=np.float64),
            "strategy": pd.Series(dtype=object),
        }
    )


def similar_products(fitted: Fitted, n: int) -> tuple[pd.DataFrame, str]:
    """Per in-range product its ``n`` most similar in-range products, and the method used.

    Cosine of the ALS item factors; without a model, cosine of co-occurrence (customers who
    interacted with both).
    """
    p = fitted.prepared
    if fitted.item_factors is not None:
        vectors = np.asarray(fitted.item_factors, dtype=np.float32)
        method = "als_item_factors"
    else:
        vectors = (p.user_items > 0).astype(np.float32).T.tocsr()
        method = "co_occurrence"
    norms = (
        np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        if sp.issparse(vectors)
        else np.linalg.norm(vectors, axis=1)
    )
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    sources = np.flatnonzero(p.eligible & (norms > 0))
    parts: list[pd.DataFrame] = []
    for start in range(0, len(sources), BATCH):
        batch = sources[start : start + BATCH]
        block = vectors[batch] @ vectors.T
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        block = (block * scale[batch, None] * scale[None, :]).astype(np.float32)
        block[:, ~p.eligible] = -np.inf
        block[np.arange(len(batch)), batch] = -np.inf
        items, values = top_n(block, n)
        keep = np.isfinite(values) & (values > 0)
        row_of = np.broadcast_to(np.arange(len(batch))[:, None], items.shape)
        parts.append(
            pd.DataFrame(
                {
                    "product_id": p.product_ids[batch][row_of[keep]],
                    "rank": np.cumsum(keep, axis=1)[keep].astype(np.int32),
                    "similar_product_id": p.product_ids[items[keep]],
                    "score": values[keep].astype(np.float64),
                }
            )
        )
    if not parts:
        return (
            pd.DataFrame(
                {
                    "product_id": pd.Series(dtype=object),
                    "rank": pd.Series(dtype=np.int32),
                    "similar_product_id": pd.Series(dtype=object),
                    "score": pd.Series(dtype=np.float64),
                }
            ),
            method,
        )
    return pd.concat(parts, ignore_index=True), method
