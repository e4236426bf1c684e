"""Survey answers as a signal: Likert answers → a few traits by factor analysis → cosine.

Each answer is put on its question's scale as a share from 0 (the scale's minimum) to 1 (its
maximum), flipped for a reverse-keyed question (so that agreeing always means more of the trait),
then standardised per question against everyone who answered it. A question left unanswered
counts as that question's mean answer (0 once standardised): it says nothing either way. Factor
analysis (scikit-learn's, varimax-rotated) turns the standardised answers into a few traits; the
number of traits is chosen by parallel analysis (Horn, 1965): as many as the correlation matrix of
the answers has eigenvalues above those of random answers of the same shape. A member's traits
are their factor scores (the posterior mean, as scikit-learn's `transform` computes it, done here
in numpy so that the server needs only the fitted arrays).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A member who answered fewer than this share of the questions is not placed (not served).
MIN_ANSWERED = 0.5
# Random answer sets parallel analysis compares with, and the percentile of their eigenvalues an
# observed one must exceed (95th: a trait must stand out from what chance alone would give).
PARALLEL_SAMPLES = 20
PARALLEL_PERCENTILE = 95.0


@dataclass(frozen=True)
class Scales:
    """Each question's scale and keying: answers become shares of the scale, agreeing up."""

    low: np.ndarray  # float64 per question
    high: np.ndarray
    reverse: np.ndarray  # bool per question

    def shares(self, answers: np.ndarray, questions: np.ndarray) -> np.ndarray:
        """Return answers to the given questions (indices) as shares of their scales, keyed."""
        low, high = self.low[questions], self.high[questions]
        share = (answers - low) / np.where(high > low, high - low, 1.0)
        share = np.clip(share, 0.0, 1.0)
        keyed: np.ndarray = np.where(self.reverse[questions], 1.0 - share, share)
        return keyed


def standardised(
    shares: np.ndarray, answered: np.ndarray, mean: np.ndarray, spread: np.ndarray
) -> np.ndarray:
    """Return keyed shares (members × questions) standardised per question, 0 where unanswered
    or where a question's answers do not vary."""
    safe = np.where(spread > 0, spread, 1.0)
    z = (shares - mean) / safe
    found: np.ndarray = np.where(answered & (spread > 0), z, 0.0)
    return found


def parallel_analysis(
    z: np.ndarray, samples: int = PARALLEL_SAMPLES, seed: int = 0, most: int | None = None
) -> int:
    """Return how many eigenvalues of the answers' correlation matrix exceed the
    PARALLEL_PERCENTILE of those of random normal answers of the same shape (at least 1)."""
    members, questions = z.shape
    if members < 3 or questions < 2:
        return 1
    observed = np.sort(np.linalg.eigvalsh(_correlation(z)))[::-1]
    rng = np.random.default_rng(seed)
    random = np.empty((samples, questions))
    for at in range(samples):
        noise = rng.standard_normal((members, questions))
        random[at] = np.sort(np.linalg.eigvalsh(_correlation(noise)))[::-1]
    threshold = np.percentile(random, PARALLEL_PERCENTILE, axis=0)
    above = observed > threshold
    k = int(np.argmin(above)) if not above.all() else questions  # the first that does not
    return max(1, min(k, most or questions - 1))


def _correlation(z: np.ndarray) -> np.ndarray:
    centred = z - z.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    scaled = centred / np.where(norms > 0, norms, 1.0)
    correlation: np.ndarray = scaled.T @ scaled
    return correlation


@dataclass(frozen=True)
class Traits:
    """A fitted factor analysis: what turns standardised answers into trait scores."""

    components: np.ndarray  # traits × questions (rotated loadings)
    noise_variance: np.ndarray  # per question
    mean: np.ndarray  # per question (of the standardised answers it was fitted on)

    def scores(self, z: np.ndarray) -> np.ndarray:
        """Return members' trait scores (members × traits), as FactorAnalysis.transform does."""
        w_psi = self.components / self.noise_variance
        covariance = np.linalg.inv(np.eye(len(self.components)) + w_psi @ self.components.T)
        scores: np.ndarray = ((z - self.mean) @ w_psi.T) @ covariance
        return scores


def fit_traits(z: np.ndarray, traits: int, seed: int = 0) -> Traits:
    """Fit scikit-learn's factor analysis (varimax rotation) with the given number of traits."""
    from sklearn.decomposition import FactorAnalysis

    analysis = FactorAnalysis(n_components=traits, rotation="varimax", random_state=seed)
    analysis.fit(z)
    return Traits(
        np.asarray(analysis.components_, dtype=np.float64),
        np.asarray(analysis.noise_variance_, dtype=np.float64),
        np.asarray(analysis.mean_, dtype=np.float64),
    )
