"""Names people type are matched to a model's names exactly, then normalised, then fuzzily."""

from __future__ import annotations

import pytest

from server.matching import FUZZY_CUTOFF, NameMatch, Vocabulary, normalise, vocabularies
from similarity.features import UserIndex
from similarity.models import MODELS
from tests.builders import SCRIPT_TAG, people_tables

TAGS = Vocabulary.of(
    ["python", "python-beyond-basics", "data-science", "machine-learning", "java", "javascript"],
    [40, 3, 12, 9, 20, 30],
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("python", "python"),
        ("  Python  ", "python"),
        ("Python Beyond Basics", "python-beyond-basics"),
        ("python_beyond__basics", "python-beyond-basics"),
        ("python - beyond\tbasics", "python-beyond-basics"),
        ("-python-", "python"),
        ("ＰＹＴＨＯＮ", "python"),  # full-width letters: NFKC
        ("Straße", "strasse"),  # case folding, not just lower case
        ("asp.net", "asp.net"),  # dots are part of a name
        ("C++ Für Anfänger", "c++-für-anfänger"),
        ("---", ""),
    ],
)
def test_normalising_folds_case_width_and_separators(text, key):
    assert normalise(text) == key


def test_a_name_as_the_model_spells_it_is_an_exact_match():
    assert TAGS.match("python") == NameMatch("python", "exact")


@pytest.mark.parametrize(
    "text", ["Python Beyond Basics", "PYTHON_BEYOND_BASICS", " python-beyond basics"]
)
def test_a_name_equal_once_normalised_is_a_normalised_match(text):
    assert TAGS.match(text) == NameMatch("python-beyond-basics", "normalised")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("pythn", "python"),  # a letter left out
        ("pyhton", "python"),  # two letters swapped: one edit
        ("Machine Lerning", "machine-learning"),
        ("javascirpt", "javascript"),
    ],
)
def test_a_misspelt_name_is_a_fuzzy_match_with_its_score(text, name):
    found = TAGS.match(text)

    assert found is not None
    assert (found.name, found.how) == (name, "fuzzy")
    assert found.score is not None and FUZZY_CUTOFF <= found.score < 1


@pytest.mark.parametrize("text", ["rust", "pyt", "py", "data", "---", "javas"])
def test_a_name_too_far_from_every_name_matches_nothing(text):
    assert TAGS.match(text) is None


def test_names_equal_once_normalised_go_to_the_one_more_users_have():
    vocabulary = Vocabulary.of(["Cloud-computing", "cloud-computing"], [2, 7])

    assert vocabulary.match("Cloud Computing") == NameMatch("cloud-computing", "normalised")
    assert vocabulary.match("Cloud-computing") == NameMatch("Cloud-computing", "exact")


def test_equally_close_fuzzy_matches_go_to_the_name_more_users_have():
    vocabulary = Vocabulary.of(["access-pt1", "access-pt2"], [1, 5])

    found = vocabulary.match("access-pt3")

    assert found is not None and found.name == "access-pt2"


def test_an_empty_vocabulary_matches_nothing():
    assert Vocabulary.of([]).match("python") is None


def test_suggestions_start_with_prefixes_then_substrings_then_fuzzy_matches():
    vocabulary = Vocabulary.of(
        ["pyton-basics", "pyton-advanced", "learn-pyton", "python", "java"], [5, 9, 50, 70, 80]
    )

    # prefixes by popularity, then the name holding the text, then the one a typo away
    assert vocabulary.suggest("Pyton", 10) == [
        "pyton-advanced",
        "pyton-basics",
        "learn-pyton",
        "python",
    ]


def test_suggestions_are_cut_at_the_limit_keeping_the_best():
    assert TAGS.suggest("java", 1) == ["javascript"]  # both start with java; more users
    assert TAGS.suggest("", 2) == ["python", "javascript"]  # no text: the most popular


def test_a_suggestion_query_is_normalised_like_a_name():
    assert TAGS.suggest("Python Beyond", 5) == ["python-beyond-basics"]


def test_vocabularies_of_a_space_hold_each_kind_it_reads_with_its_popularity():
    tables = people_tables()
    space = MODELS["hybrid"].space(tables, UserIndex.of(tables))

    found = vocabularies(space)

    assert SCRIPT_TAG in found["interests"].names
    assert "python-beyond-basics" in found["courses"].names
    assert set(found["assessments"].names) == {"java", "javascript", "python"}
    # python is followed by three users, data-science by two
    assert found["interests"].suggest("", 2) == ["python", "data-science"]


def test_a_model_that_does_not_read_a_kind_has_an_empty_vocabulary_of_it():
    tables = people_tables()
    space = MODELS["interests"].space(tables, UserIndex.of(tables))

    found = vocabularies(space)

    assert len(found["courses"]) == len(found["assessments"]) == 0


def test_a_name_much_longer_than_every_known_name_is_not_compared_fuzzily():
    vocabulary = Vocabulary.of(["python", "javascript"])
    # One character NFKC makes 18: 200 of them are far longer than any name could be close to.
    assert not vocabulary.may_be_close(normalise("\ufdfa" * 200))
    assert vocabulary.match("\ufdfa" * 200) is None
    assert vocabulary.suggest("\ufdfa" * 200, 5) == []
    assert vocabulary.may_be_close("x" * 12)  # 10 / 12 of "javascript" at best: still compared
    assert vocabulary.match("javascrip") == NameMatch("javascript", "fuzzy", 0.9)
