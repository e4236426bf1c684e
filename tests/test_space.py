"""A model's space places a profile the way the generator placed every user, and explains scores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from generator.synthetic import synthesize
from generator.tables import load_tables
from similarity.clusters import Clusters, Hashing
from similarity.factors import fit, fold_in
from similarity.features import UserIndex
from similarity.models import MODELS, SIGNALS
from similarity.neighbours import top_n
from similarity.space import ModelSpace, Profile
from tests.builders import PLATFORM_MODELS, make_tables

EVERY_MODEL = PLATFORM_MODELS


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("export")
    synthesize(300, directory, seed=5)
    tables = load_tables(directory)
    return tables, UserIndex.of(tables)


@pytest.fixture(scope="module")
def spaces(export):
    tables, index = export
    return {handle: MODELS[handle].space(tables, index) for handle in EVERY_MODEL}


def own_profile(tables, handle: int) -> Profile:
    """Return a profile holding everything a user did, as the export has it."""
    interests = tables.user_interests
    views = tables.user_course_views
    scores = tables.user_assessment_scores.sort_values("user_assessment_date", kind="stable")
    mine = views[views["user_handle"] == handle]
    seconds = mine.groupby("course_id", observed=True)["view_time_seconds"].sum()
    latest = scores[scores["user_handle"] == handle].drop_duplicates("assessment_tag", keep="last")
    return Profile(
        interests=[str(t) for t in interests[interests["user_handle"] == handle]["interest_tag"]],
        courses={str(c): float(s) for c, s in seconds.items()},
        assessments={
            str(t): float(s)
            for t, s in zip(latest["assessment_tag"], latest["user_assessment_score"], strict=True)
        },
    )


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_a_profile_of_a_users_own_evidence_lands_on_their_row(export, spaces, model):
    tables, index = export
    space = spaces[model]
    users = np.flatnonzero(np.diff(space.matrix.indptr) > 0)[::7]
    assert len(users) > 5
    for row in users.tolist():
        vector = space.encode(own_profile(tables, int(index.handles[row])))
        expected = space.matrix[row].toarray()
        if model == "course_factors":
            # implicit fits with a few conjugate-gradient steps, a fold-in solves exactly
            assert (vector @ space.matrix[row].T).toarray()[0, 0] > 0.99
        else:
            np.testing.assert_allclose(vector.toarray(), expected, atol=1e-5)


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_the_space_matrix_is_the_models_matrix(export, spaces, model):
    tables, index = export
    expected = MODELS[model].matrix(tables, index)
    assert spaces[model].matrix.shape == expected.shape and expected.nnz > 0
    np.testing.assert_allclose(spaces[model].matrix.toarray(), expected.toarray(), atol=1e-6)


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_a_written_space_reads_back_the_same_memory_mapped(spaces, tmp_path, model):
    space = spaces[model]
    space.write(tmp_path)
    loaded = ModelSpace.load(tmp_path)
    assert not loaded.matrix.data.flags.writeable  # mapped read-only, not copied
    assert (loaded.matrix != space.matrix).nnz == 0
    np.testing.assert_array_equal(loaded.handles, space.handles)
    assert [b.handle for b in loaded.blocks] == [b.handle for b in space.blocks]
    profile = Profile(
        interests=space.vocabulary("interests")[:2],
        courses={c: None for c in space.vocabulary("courses")[:2]},
    )
    np.testing.assert_allclose(loaded.encode(profile).toarray(), space.encode(profile).toarray())


def test_a_space_of_another_format_is_refused(spaces, tmp_path):
    spaces["interests"].write(tmp_path)
    text = (tmp_path / "space.json").read_text().replace('"format": 1', '"format": 99')
    (tmp_path / "space.json").write_text(text)
    with pytest.raises(ValueError, match="format 99"):
        ModelSpace.load(tmp_path)


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_searching_with_a_users_row_finds_their_stored_neighbours(spaces, model):
    space = spaces[model]
    found = top_n(space.matrix, 5)
    for row in np.flatnonzero(found.rows[:, 0] >= 0)[::40].tolist():
        matches = space.search(space.row(row), 5, exact_max_users=10**9, exclude=row)
        stored = found.scores[row][found.rows[row] >= 0]
        np.testing.assert_allclose([m.score for m in matches], stored, atol=2e-6)
        assert space.handles[row] not in [m.user_handle for m in matches]


def test_search_breaks_ties_by_handle_and_keeps_only_positive_scores():
    tables = make_tables(interests=[(9, "python"), (4, "python"), (7, "python"), (2, "java")])
    space = MODELS["interests"].space(tables, UserIndex.of(tables))
    matches = space.search(space.encode(Profile(interests=["python"])), 10, exact_max_users=100)
    assert [m.user_handle for m in matches] == [4, 7, 9]
    assert all(m.score == pytest.approx(1.0) for m in matches)


def test_clusters_narrow_the_search_above_the_exact_threshold(spaces):
    space = spaces["interests"]
    rows = np.arange(space.users)
    half = space.users // 2
    # Two clusters: the first half of the rows and the rest; probing one searches only its own.
    dense = space.matrix.toarray()
    centroids = np.stack([dense[:half].mean(axis=0), dense[half:].mean(axis=0)]).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    clusters = Clusters(centroids, rows, np.array([0, half, space.users]), probes=1)
    clustered = dataclasses.replace(space, clusters=clusters)
    vector = space.row(3)
    approximate = clustered.search(vector, 5, exact_max_users=10)
    exact = clustered.search(vector, 5, exact_max_users=10**6)
    probed = int(np.argmax(centroids @ vector.toarray()[0]))
    members = set(space.handles[rows[half * probed : half if probed == 0 else None]].tolist())
    assert {m.user_handle for m in approximate} <= members
    assert exact == space.search(vector, 5, exact_max_users=10**6)


def test_hashed_clusters_project_like_the_generator():
    hashing = Hashing.random(features=50, dimensions=8, seed=1)
    rows = sp.random(4, 50, density=0.3, format="csr", dtype=np.float32, random_state=2)
    projected = hashing.project(rows)
    assert projected.shape == (4, 8)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_shared_evidence_adds_up_to_the_score(spaces, model):
    space = spaces[model]
    found = top_n(space.matrix, 3)
    checked = 0
    for row in np.flatnonzero(found.rows[:, 0] >= 0)[::30].tolist():
        for neighbour, score in zip(found.rows[row], found.scores[row], strict=True):
            if neighbour < 0:
                continue
            shared = space.shared(space.row(row), space.row(int(neighbour)))
            assert sum(e.contribution for e in shared) == pytest.approx(score, abs=1e-5)
            contributions = [e.contribution for e in shared]
            assert contributions == sorted(contributions, reverse=True)
            checked += 1
    assert checked > 5


def test_shared_evidence_names_only_what_both_users_have():
    tables = make_tables(
        interests=[(1, "python"), (1, "sql"), (2, "python"), (2, "rust"), (3, "go")]
    )
    space = MODELS["interests"].space(tables, UserIndex.of(tables))
    shared = space.shared(space.row(0), space.row(1))
    assert [(e.label, e.name) for e in shared] == [("interest", "python")]


def test_hybrid_evidence_is_labelled_by_the_block_it_comes_from(export, spaces):
    space = spaces["hybrid"]
    labels = {space.label_of(block.offset)[0] for block in space.blocks}
    assert labels == {"interest", "course", "assessment", "course_tag"}


def test_unknown_names_and_an_empty_profile_encode_to_nothing(spaces):
    for space in spaces.values():
        assert space.encode(Profile(interests=["no-such-tag"], courses={"nope": None})).nnz == 0
        assert space.encode(Profile()).nnz == 0


def test_a_course_without_seconds_counts_as_its_typical_time(spaces):
    space = spaces["course_tags"]
    (block,) = space.blocks
    course = str(block.inputs[0])
    typical = float(block.arrays["typical"][0])
    assert typical > 0
    named = space.encode(Profile(courses={course: None}))
    timed = space.encode(Profile(courses={course: typical}))
    np.testing.assert_allclose(named.toarray(), timed.toarray())


def test_fold_in_matches_implicits_recalculate_user():
    from implicit.cpu.als import AlternatingLeastSquares

    values = sp.random(60, 20, density=0.2, format="csr", dtype=np.float32, random_state=3)
    values.data[:] = 1 + values.data * 3
    users, items = fit(values, method="als", factors=4, regularization=0.5, alpha=2.0, seed=1)
    model = AlternatingLeastSquares(factors=4, regularization=0.5, alpha=2.0)
    model.item_factors = items
    model.user_factors = users
    expected = model.recalculate_user(np.arange(3), values[:3])
    got = fold_in(values[:3], items, method="als", regularization=0.5, alpha=2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_fold_in_of_an_svd_projects_the_row():
    values = sp.random(40, 12, density=0.3, format="csr", dtype=np.float32, random_state=4)
    users, items = fit(values, method="svd", factors=3, iterations=5)
    np.testing.assert_allclose(fold_in(values, items, method="svd"), users, atol=1e-4)


def test_every_signal_reads_one_kind_of_profile(spaces):
    kinds = {
        space.blocks[0].handle: space.blocks[0].kind for h, space in spaces.items() if h in SIGNALS
    }
    assert kinds == {
        "interests": "interests",
        "course_views": "courses",
        "assessments": "assessments",
        "course_tags": "courses",
        "course_factors": "courses",
    }


def test_one_long_name_does_not_widen_every_name_of_the_artifact(tmp_path):
    long_tag = "x" * 50_000
    tables = make_tables(interests=[(u, f"tag{u}") for u in range(2000)] + [(1, long_tag)])
    space = MODELS["interests"].space(tables, UserIndex.of(tables))
    space.write(tmp_path)
    written = sum(path.stat().st_size for path in tmp_path.iterdir())
    assert written < 2_000_000  # fixed-width names: 2,001 × 50,000 × 4 bytes, twice
    loaded = ModelSpace.load(tmp_path)
    assert long_tag in loaded.vocabulary("interests")
    assert loaded.encode(Profile(interests=[long_tag, "tag7"])).nnz == 2


def test_a_space_naming_an_array_outside_its_folder_is_refused(spaces, tmp_path):
    spaces["interests"].write(tmp_path)
    text = (tmp_path / "space.json").read_text().replace('"df"', '"/../../etc/x"')
    (tmp_path / "space.json").write_text(text)
    with pytest.raises(ValueError, match="names an array"):
        ModelSpace.load(tmp_path)


def test_a_model_with_no_feature_at_all_builds_and_answers_nothing():
    # Courses were viewed, but none of them has a tag: course_tags has no column.
    tables = make_tables(views=[(1, "c1", 60.0), (2, "c1", 90.0)], course_tags=[("c9", "rust")])
    space = MODELS["course_tags"].space(tables, UserIndex.of(tables))
    assert space.matrix.shape == (2, 0)
    vector = space.encode(Profile(courses={"c1": None}))
    assert vector.nnz == 0 and space.search(vector, 5, exact_max_users=10) == []


def test_a_name_says_whether_it_adds_evidence_as_its_encoding_does(spaces):
    checked = {True: 0, False: 0}
    for space in spaces.values():
        for kind in ("interests", "courses", "assessments"):
            for name in space.vocabulary(kind)[:40]:
                for value in [None] if kind != "assessments" else [0.0, 150.0, 300.0]:
                    profile = Profile(
                        interests=[name] if kind == "interests" else [],
                        courses={name: value} if kind == "courses" else {},
                        assessments={name: value} if kind == "assessments" else {},
                    )
                    adds = space.encode(profile).nnz > 0
                    assert space.has_evidence(kind, name, value) == adds, (kind, name, value)
                    checked[adds] += 1
    assert checked[True] > 50 and checked[False] > 5
