"""Group course tags into latent topics and guess the topic a course or assessment name belongs to.

Topics are what make similar users: every user draws their interests, courses and assessments
from a few topics. A real catalogue's tags are clustered by the words of their courses and the tags
they appear with; any other name is matched to the topic whose tags and courses use its words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from generator.synthetic.sampling import Floats
from generator.synthetic.vocabulary import ALIASES, STOP_WORDS

# How many topics a real catalogue's tags are grouped into.
TOPICS_FROM_REAL_CATALOGUE = 40


def clustered_topics(course_ids: pd.Series, tags: pd.Series) -> tuple[dict[str, int], Floats]:
    """Group a real catalogue's tags into topics by the words of their courses and co-tags.

    `course_ids` and `tags` are the catalogue's rows (one per course and tag, same index); a row
    with an empty tag is a course without tags. Return each tag's topic and each topic's rows + 1.
    """
    # Imported here: scikit-learn is slow to import and only needed with a real catalogue.
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    course_ids, tags = _tagged(course_ids, tags)
    documents: dict[str, list[str]] = {}
    for course_id, tag in zip(course_ids, tags, strict=True):
        documents.setdefault(tag, []).extend(course_words(course_id))
    for co_tags in tags.groupby(course_ids, sort=True).agg(list):
        for tag in co_tags:
            documents[tag].extend(f"tag:{other}" for other in co_tags)
    distinct = sorted(documents)
    vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, min_df=2)
    matrix = vectorizer.fit_transform([documents[tag] + [f"tag:{tag}"] * 3 for tag in distinct])
    components = min(60, matrix.shape[1] - 1, len(distinct) - 1)
    embedded = normalize(TruncatedSVD(components, random_state=0).fit_transform(matrix))
    n_topics = min(TOPICS_FROM_REAL_CATALOGUE, len(distinct))
    labels = KMeans(n_topics, n_init=4, random_state=0).fit_predict(embedded)
    tag_topic = {tag: int(label) for tag, label in zip(distinct, labels, strict=True)}
    rows = tags.map(tag_topic).to_numpy(dtype=np.int64)
    return tag_topic, np.bincount(rows, minlength=n_topics).astype(np.float64) + 1.0


def _tagged(course_ids: pd.Series, tags: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return the rows that name a tag, leaving out courses without tags."""
    named = tags != ""
    return course_ids[named], tags[named]


def _identity(document: list[str]) -> list[str]:
    """Return a pre-tokenised document unchanged."""
    return document


def course_words(course_id: str) -> list[str]:
    """Split a course id into its meaningful words, dropping numbers and filler."""
    return [w for w in course_id.lower().split("-") if len(w) > 1 and not w.isdigit()]


def tag_words(tag: str) -> list[str]:
    """Split a tag into words, adding the other spellings of known technologies."""
    words = [tag, *(w for w in tag.lower().split("-") if w not in STOP_WORDS and not w.isdigit())]
    return words + list(ALIASES.get(tag, ()))


def topic_words(
    course_ids: pd.Series, tags: pd.Series, tag_topic: dict[str, int], n_topics: int
) -> dict[str, Floats]:
    """Count, for every word of tags and course ids, how often it occurs in each topic."""
    words: list[str] = []
    topics: list[int] = []
    for course_id, tag in zip(*_tagged(course_ids, tags), strict=True):
        found = [w for w in [tag, *tag.split("-"), *course_words(course_id)] if w not in STOP_WORDS]
        words.extend(found)
        topics.extend([tag_topic[tag]] * len(found))
    codes, vocabulary = pd.factorize(pd.Series(words, dtype=object))
    counts = np.zeros((len(vocabulary), n_topics))
    np.add.at(counts, (codes, np.array(topics, dtype=np.int64)), 1.0)
    return {str(word): counts[index] for index, word in enumerate(vocabulary)}


def guess_topic(
    rng: np.random.Generator,
    name: str,
    words: Sequence[str],
    word_counts: dict[str, Floats],
    topic_weight: Floats,
) -> int:
    """Pick the topic whose tags and courses use the given words most, or a random one.

    `word_counts` is what topic_words returns; a word equal to `name` itself counts three times.
    """
    score = np.zeros(len(topic_weight))
    for word in dict.fromkeys(words):
        if word in word_counts:
            seen = word_counts[word]
            score += (3.0 if word == name else 1.0) * seen / seen.sum()
    if score.max() > 0:
        return int(np.argmax(score))
    return int(rng.choice(len(topic_weight), p=topic_weight / topic_weight.sum()))
