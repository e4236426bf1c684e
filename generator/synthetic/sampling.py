"""Weighted draws of items within a topic or from everything, vectorised over many draws at once.

Every catalogue item (course, interest tag, assessment tag, author) belongs to one topic and has a
popularity weight. A Sampler is prepared once per kind of item; drawing then costs a binary search
per draw, so millions of draws per chunk of users stay cheap. The type names of the package's
arrays and the numbering of entries within sorted groups live here too, as every draw uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Strings = NDArray[np.str_]


@dataclass(frozen=True)
class Sampler:
    """Draws items either within a topic or from everything, by weight."""

    items: Ints  # the item of each entry, entries ordered by topic
    bounds: Ints  # (topics + 1,) segment starts into items; empty segments fall back to global
    shifted: Floats  # topic index + within-topic cumulative share, increasing
    overall: Floats  # cumulative global weight, in the order of items
    shares: Floats  # (topics + 1, n_items) item probabilities within each topic, then globally


def sampler(topic: Ints, weight: Floats, topic_weight: Floats, item: Ints | None = None) -> Sampler:
    """Prepare drawing items by weight within a topic, or globally with topics weighted as given.

    Each entry (topic, weight) is an item of its own, or `item[entry]` when an item is listed
    under several topics; every item then needs at least one entry.
    """
    n_topics = len(topic_weight)
    entry_item = np.arange(len(topic)) if item is None else np.asarray(item, dtype=np.int64)
    n_items = int(entry_item.max()) + 1 if len(entry_item) else 0
    order = np.argsort(topic, kind="stable")
    sorted_topic = topic[order]
    sorted_item = entry_item[order]
    sorted_weight = np.asarray(weight, dtype=np.float64)[order]
    bounds = np.searchsorted(sorted_topic, np.arange(n_topics + 1)).astype(np.int64)
    total = np.bincount(sorted_topic, weights=sorted_weight, minlength=n_topics)
    within = np.zeros(len(order))
    for t in np.flatnonzero(total > 0):
        segment = slice(bounds[t], bounds[t + 1])
        share = np.cumsum(sorted_weight[segment]) / total[t]
        share[-1] = 1.0
        within[segment] = share
    shifted = sorted_topic + within
    safe_total = np.where(total > 0, total, 1.0)
    overall_weight = sorted_weight * (topic_weight / safe_total)[sorted_topic]
    shares = np.zeros((n_topics + 1, n_items))
    np.add.at(shares[-1], sorted_item, overall_weight / overall_weight.sum())
    np.add.at(shares, (sorted_topic, sorted_item), sorted_weight / safe_total[sorted_topic])
    shares[:-1][total <= 0] = shares[-1]
    return Sampler(sorted_item, bounds, shifted, np.cumsum(overall_weight), shares)


def draw(rng: np.random.Generator, sampler: Sampler, topics: Ints) -> Ints:
    """Draw one item per entry of topics (-1, or a topic without items, draws globally)."""
    n_topics = len(sampler.bounds) - 1
    safe = np.clip(topics, 0, n_topics - 1)
    start = sampler.bounds[safe]
    end = sampler.bounds[safe + 1]
    local = (topics >= 0) & (end > start) & (sampler.shifted[np.maximum(end - 1, 0)] > safe)
    u = rng.random(len(topics))
    position = np.empty(len(topics), dtype=np.int64)
    position[local] = np.searchsorted(sampler.shifted, safe[local] + u[local], side="right")
    position[local] = np.minimum(position[local], end[local] - 1)
    glob = ~local
    position[glob] = np.searchsorted(sampler.overall, u[glob] * sampler.overall[-1], side="right")
    position[glob] = np.minimum(position[glob], len(sampler.items) - 1)
    return sampler.items[position]


def weighted_subset(rng: np.random.Generator, weight: Floats, size: int) -> Ints:
    """Pick up to size distinct indices, each more likely the heavier it is."""
    keys = np.log(np.maximum(weight, 1e-12)) + rng.gumbel(size=len(weight))
    return np.sort(np.argsort(-keys, kind="stable")[:size]).astype(np.int64)


def zipf_within(
    rng: np.random.Generator, topic: Ints, n_topics: int, exponent: float, offset: float
) -> Floats:
    """Weight items by a Zipf law over a random ranking within each topic."""
    order = np.lexsort((rng.random(len(topic)), topic))
    starts = np.searchsorted(topic[order], np.arange(n_topics))
    rank = np.empty(len(topic), dtype=np.int64)
    rank[order] = np.arange(len(topic)) - starts[topic[order]]
    return np.asarray(1.0 / (rank + offset) ** exponent, dtype=np.float64)


def ranks(groups: Ints) -> Ints:
    """Number the entries of each run of equal, sorted group values 0, 1, 2, ..."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)
