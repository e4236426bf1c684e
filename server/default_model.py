"""Which model answers a request that names none: the one set by DEFAULT_MODEL, or, with `auto`,
the model whose current run measured best on its own export's hold-out.

Only runs made from the same export are compared (the export of the newest measured run), so a
model left over from another population never wins. Ties go to the simpler model: a single
signal before a combination, then the registry's order. With nothing measured, `hybrid` answers
if it has a run (it weighs every signal), else the first model of the registry that has one.
"""

from __future__ import annotations

from collections.abc import Mapping

from similarity.models import MODELS
from store import Run

AUTO = "auto"
FALLBACK = "hybrid"
_ORDER = {handle: position for position, handle in enumerate(MODELS)}


def choose(setting: str, current: Mapping[str, Run]) -> tuple[str | None, str]:
    """Return the model to answer with by default (None if no model has a run) and why."""
    if setting != AUTO:
        return setting, "set by DEFAULT_MODEL"
    measured = {h: r for h, r in current.items() if _recall(r) is not None}
    if measured:
        newest = max(measured.values(), key=lambda run: run.run_id)
        export = _export_id(newest)
        same = [h for h, r in measured.items() if _export_id(r) == export]
        best = max(same, key=lambda h: _rank(h, measured[h]))
        k = (measured[best].quality or {}).get("k", 10)
        return best, f"best recall@{k} of the current runs"
    if FALLBACK in current:
        return FALLBACK, "no current run is measured: the hybrid of every signal"
    first = min(current, key=lambda h: _ORDER.get(h, len(_ORDER)), default=None)
    reason = "no current run is measured: the first model of the registry with a run"
    return first, reason


def _recall(run: Run) -> float | None:
    """Return the run's measured recall, if it has one."""
    value = (run.quality or {}).get("recall")
    return float(value) if isinstance(value, int | float) else None


def _export_id(run: Run) -> object:
    """Return the id of the export the run was made from (None if it does not say)."""
    return (run.export or {}).get("id")


def _rank(handle: str, run: Run) -> tuple[float, float, bool, int]:
    """Order runs by recall, then NDCG, then simplicity (what `max` should pick comes last)."""
    quality = run.quality or {}
    ndcg = quality.get("ndcg")
    model = MODELS.get(handle)
    combined = model is None or bool(model.blocks)
    return (
        _recall(run) or 0.0,
        float(ndcg) if isinstance(ndcg, int | float) else 0.0,
        not combined,
        -_ORDER.get(handle, len(_ORDER)),
    )
