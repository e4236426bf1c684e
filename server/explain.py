"""Why two users are similar: the features both have, and what each adds to their cosine.

Rows are unit length, so a cosine is the sum over the features two rows both have of the product
of their values; a feature only one of them has adds nothing. An explanation lists the features
adding the most (up to `SHARED_MAX`), each with its share of the score, and sums up the rest, so
that the contributions shown plus the rest's are the score. Nothing of a neighbour's evidence
that the asker does not share is ever shown.
"""

from __future__ import annotations

from typing import Any

import scipy.sparse as sp

from similarity.space import ModelSpace

SHARED_MAX = 5  # features listed per neighbour; the rest are summed up in `shared_rest`
CONTRIBUTION_DECIMALS = 6  # as scores are rounded
SHARE_DECIMALS = 4


def explanation(
    space: ModelSpace, asker: sp.csr_matrix, neighbour: sp.csr_matrix, score: float
) -> dict[str, Any]:
    """Return the `shared` and `shared_rest` fields of a neighbour whose score with the asker
    (both unit rows of the space) is `score`."""
    evidence = space.shared(asker, neighbour)
    shown, rest = evidence[:SHARED_MAX], evidence[SHARED_MAX:]
    return {
        "shared": [
            {
                "kind": item.label,
                "name": item.name,
                "contribution": round(item.contribution, CONTRIBUTION_DECIMALS),
                "share": round(item.contribution / score, SHARE_DECIMALS) if score else 0.0,
            }
            for item in shown
        ],
        "shared_rest": {
            "features": len(rest),
            "contribution": round(
                float(sum(item.contribution for item in rest)), CONTRIBUTION_DECIMALS
            ),
        },
    }
