"""The survey model: answers keyed and standardised, reduced to traits, compared by cosine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from generator import pipeline
from generator.evaluate import evaluate
from generator.survey_quality import evaluate_survey, hide
from similarity.features import UserIndex, latest_answers
from similarity.models import MODELS
from similarity.neighbours import top_n
from similarity.space import ModelSpace, Profile
from similarity.survey import Traits, fit_traits, parallel_analysis
from store.memory import MemoryStore

SURVEY = MODELS["survey"]


@dataclass(frozen=True)
class SurveyTables:
    """An export of survey files only."""

    user_answers: pd.DataFrame | None
    questions: pd.DataFrame | None = None
    user_interests: pd.DataFrame | None = None
    user_course_views: pd.DataFrame | None = None
    user_assessment_scores: pd.DataFrame | None = None
    course_tags: pd.DataFrame | None = None


def answers_frame(rows: list[tuple[int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_handle": pd.Series([u for u, _, _ in rows], dtype="int64"),
            "question_id": pd.Categorical([q for _, q, _ in rows]),
            "answer": pd.Series([a for _, _, a in rows], dtype="float64"),
        }
    )


def questions_frame(rows: list[tuple[str, float, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question_id": pd.Categorical([q for q, *_ in rows]),
            "text": [f"question {q}" for q, *_ in rows],
            "scale_min": [lo for _, lo, _, _ in rows],
            "scale_max": [hi for _, _, hi, _ in rows],
            "reverse_keyed": [r for *_, r in rows],
        }
    )


def latent_survey(users: int, traits: int, per_trait: int, seed: int, missing: float = 0.1):
    """Answers on 1–5 from latent traits: each question loads on one trait, every third one is
    reverse-keyed; a share of answers is missing."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((users, traits))
    rows, questions = [], []
    for trait in range(traits):
        for item in range(per_trait):
            question = f"t{trait}q{item}"
            reverse = item % 3 == 2
            questions.append((question, 1.0, 5.0, reverse))
            signal = latent[:, trait] * (-1 if reverse else 1)
            answer = np.clip(np.round(3 + 1.2 * signal + 0.6 * rng.standard_normal(users)), 1, 5)
            for user in range(users):
                if rng.random() > missing:
                    rows.append((user + 1, question, float(answer[user])))
    return SurveyTables(answers_frame(rows), questions_frame(questions)), latent


@pytest.fixture(scope="module")
def survey():
    tables, latent = latent_survey(users=400, traits=3, per_trait=6, seed=1)
    return tables, latent, SURVEY.space(tables, UserIndex.of(tables))


def test_parallel_analysis_finds_the_number_of_latent_traits(survey):
    _, _, space = survey
    (block,) = space.blocks
    assert block.summary["traits"] == 3
    assert block.summary["traits_from"] == "parallel analysis"
    assert len(block.summary["loadings"]) == 18


def test_parallel_analysis_finds_one_trait_in_noise_at_most():
    noise = np.random.default_rng(0).standard_normal((300, 12))
    assert parallel_analysis(noise) == 1


def test_users_alike_in_their_latent_traits_are_neighbours(survey):
    _, latent, space = survey
    found = top_n(space.matrix, 10)
    unit = latent / np.linalg.norm(latent, axis=1, keepdims=True)
    truth = unit @ unit.T
    np.fill_diagonal(truth, -np.inf)
    random_pairs = truth[np.isfinite(truth)].mean()
    chosen = truth[np.arange(len(latent))[:, None], found.rows].mean()
    assert chosen > random_pairs + 0.5  # the neighbours' latent cosine is far above chance


def test_the_trait_scores_are_scikit_learns_factor_scores():
    from sklearn.decomposition import FactorAnalysis

    z = np.random.default_rng(3).standard_normal((200, 8))
    z[:, 4:] += z[:, :4]
    fitted = fit_traits(z, 2, seed=0)
    analysis = FactorAnalysis(n_components=2, rotation="varimax", random_state=0).fit(z)
    np.testing.assert_allclose(fitted.scores(z), analysis.transform(z), atol=1e-8)
    assert isinstance(fitted, Traits)


def test_a_members_own_answers_land_on_their_row(survey):
    tables, _, space = survey
    answers = tables.user_answers
    for user in (1, 17, 230):
        mine = answers[answers["user_handle"] == user]
        profile = Profile(
            answers=dict(zip(mine["question_id"].astype(str), mine["answer"], strict=True))
        )
        row = space.row(space.row_of(user))
        np.testing.assert_allclose(space.encode(profile).toarray(), row.toarray(), atol=1e-6)


def test_reverse_keyed_answers_are_flipped_so_agreeing_means_the_same():
    questions = questions_frame([("a", 1, 5, False), ("b", 1, 5, True), ("c", 1, 5, False)])
    # 1 and 2 agree in substance: 2 answers the reverse-keyed b the other way round.
    rows = [(1, "a", 5), (1, "b", 1), (1, "c", 1), (2, "a", 5), (2, "b", 1), (2, "c", 1)]
    rows += [(3, "a", 1), (3, "b", 5), (3, "c", 5), (4, "a", 2), (4, "b", 4), (4, "c", 4)]
    rows += [(5, "a", 3), (5, "b", 3), (5, "c", 2), (6, "a", 4), (6, "b", 2), (6, "c", 3)]
    tables = SurveyTables(answers_frame(rows), questions)
    model = SURVEY.with_settings({**SURVEY.settings, "traits": 1})
    space = model.space(tables, UserIndex.of(tables))
    first, second, third = (space.row(space.row_of(u)).toarray()[0] for u in (1, 2, 3))
    np.testing.assert_allclose(first, second)
    assert float(first @ third) < 0  # opposite answers, opposite traits


def test_a_member_with_too_few_answers_is_not_placed(survey):
    _, _, space = survey
    (block,) = space.blocks
    few = Profile(answers={"t0q0": 5.0, "t1q0": 1.0})  # 2 of 18 questions
    assert space.encode(few).nnz == 0
    enough = Profile(answers={q: 4.0 for q in block.inputs.tolist()[:10]})
    assert space.encode(enough).nnz > 0


def test_without_questions_the_scales_come_from_the_answers_seen():
    tables, _ = latent_survey(users=120, traits=2, per_trait=4, seed=2)
    bare = SurveyTables(tables.user_answers, None)
    space = SURVEY.space(bare, UserIndex.of(bare))
    (block,) = space.blocks
    assert block.arrays["low"].min() >= 1 and block.arrays["high"].max() <= 5
    assert not block.arrays["reverse"].any()
    assert space.matrix.nnz > 0


def test_a_survey_space_reads_back_from_its_files(survey, tmp_path):
    _, _, space = survey
    space.write(tmp_path)
    loaded = ModelSpace.load(tmp_path)
    profile = Profile(answers={q: 2.0 for q in space.vocabulary("answers")[:12]})
    np.testing.assert_allclose(loaded.encode(profile).toarray(), space.encode(profile).toarray())
    assert loaded.traits(profile).keys() == {"trait 1", "trait 2", "trait 3"}
    assert loaded.summary()["survey"]["traits"] == 3


def test_a_repeated_answer_counts_once_the_latest():
    rows = [(1, "a", 1.0), (1, "a", 5.0)]
    frame = answers_frame(rows).assign(answered_at=pd.to_datetime(["2024-01-02", "2024-01-01"]))
    latest = latest_answers(frame)
    assert latest["answer"].tolist() == [1.0]  # answered on the 2nd, after the 5 of the 1st


def test_neighbours_predict_hidden_answers_better_than_the_question_mean(survey):
    tables, _, _ = survey
    quality = evaluate_survey(tables, SURVEY, top_n_stored=20)
    assert quality.users_evaluated > 300 and quality.answers_hidden > 1000
    assert quality.mae < quality.question_mean
    assert quality.mae < quality.random_neighbours
    assert set(quality.as_json()) == {"users_evaluated", "answers_hidden", "mae", "baselines"}


def test_hiding_keeps_at_least_one_answer_of_every_member():
    rows = [(u, f"q{q}", 3.0) for u in (1, 2, 3) for q in range(u + 1)]  # 2, 3 and 4 answers
    kept, hidden = hide(answers_frame(rows), 0.5, seed=0)
    assert kept.groupby("user_handle").size().to_dict() == {1: 1, 2: 1, 3: 2}
    assert hidden.groupby("user_handle").size().to_dict() == {1: 1, 2: 2, 3: 2}


def test_a_survey_only_export_is_evaluated_on_its_answers_alone(survey):
    tables, _, _ = survey
    report = evaluate(tables, [SURVEY])
    document = report.as_json()
    assert document["survey"]["mae"] < document["survey"]["baselines"]["question_mean"]
    assert document["models"] == {}


def test_a_published_survey_run_records_its_traits_and_loadings(survey):
    tables, _, _ = survey
    store = MemoryStore()
    pipeline.run(tables, store, ["survey"], top_n_stored=5)
    run = store.current_run("survey")
    fit = run.settings["fit"]["survey"]
    assert fit["traits"] == 3 and len(fit["loadings"]) == 18
    assert all(len(loading) == 3 for loading in fit["loadings"].values())
    assert store.get_list(run, 1) is not None


@pytest.fixture(scope="module")
def survey_client(survey):
    from server import Settings, create_app
    from tests.fakes import Clock, SpaceArtifacts, publish_space

    _, _, space = survey
    store, artifacts = MemoryStore(), SpaceArtifacts()
    publish_space(store, artifacts, space)
    settings = Settings(default_model="survey", pointer_cache_seconds=0)
    return create_app(store, settings, clock=Clock(), artifacts=artifacts).test_client()


def test_a_new_members_answers_find_members_alike_and_show_their_traits(survey, survey_client):
    tables, _, space = survey
    mine = tables.user_answers[tables.user_answers["user_handle"] == 17]
    answers = dict(zip(mine["question_id"].astype(str), mine["answer"], strict=True))
    answer = survey_client.post("/similar-users", json={"profile": {"answers": answers}})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    traits = body["request_data"]["traits"]
    assert traits.keys() == {"trait 1", "trait 2", "trait 3"}
    expected = space.traits(Profile(answers=answers))
    assert traits == {name: pytest.approx(value, abs=1e-4) for name, value in expected.items()}
    assert body["data"]["similar_users"][0]["user_handle"] == 17  # their own answers: themselves
    assert {m["how"] for m in body["request_data"]["matched"]} == {"exact"}


def test_a_member_with_too_few_answers_is_told_how_many_are_needed(survey_client):
    answer = survey_client.post(
        "/similar-users", json={"profile": {"answers": {"t0q0": 5, "t1q1": 2}}}
    )
    assert answer.status_code == 422
    reasons = {p["name"]: p["reason"] for p in answer.get_json()["invalid_params"]}
    assert "answers 2 of the 18 questions" in reasons["profile.answers"]
    assert "at least 9 are needed" in reasons["profile.answers"]


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"t0q0": "5"}, "profile.answers.t0q0"),
        ({"t0q0": True}, "profile.answers.t0q0"),
        ({"t0q0": 1e13}, "profile.answers.t0q0"),
        ({"": 3}, "profile.answers."),
        ([3, 4], "profile.answers"),
    ],
)
def test_bad_answers_are_refused_naming_the_field(survey_client, answers, field):
    answer = survey_client.post("/similar-users", json={"profile": {"answers": answers}})
    assert answer.status_code == 422
    assert field in {p["name"] for p in answer.get_json()["invalid_params"]}


def test_question_ids_are_never_matched_fuzzily(survey_client):
    # "t0q1" is one character from "t0q0": another question, not a typo of it.
    answers = {f"t{t}q{q}": 3 for t in range(3) for q in range(6)}
    answers.pop("t0q0")
    answers["t0q9"] = 5
    answer = survey_client.post("/similar-users", json={"profile": {"answers": answers}})
    assert answer.status_code == 200
    unmatched = answer.get_json()["request_data"]["unmatched"]
    assert [u["input"] for u in unmatched] == ["t0q9"]


def test_a_folder_of_survey_files_only_is_generated_and_served_end_to_end(tmp_path):
    import shutil

    import run_generator
    from generator.synthetic import synthesize
    from server import Settings, create_app
    from store.artifacts import FileArtifacts
    from tests.fakes import Clock

    synthesize(400, tmp_path / "full", seed=4, survey=True)
    (tmp_path / "export").mkdir()
    for name in ("user_answers.csv", "questions.csv"):
        shutil.copy(tmp_path / "full" / name, tmp_path / "export" / name)
    store, artifacts = MemoryStore(), FileArtifacts(tmp_path / "artifacts")
    argv = ["generate", "--data-dir", str(tmp_path / "export"), "--top-n", "10"]
    code = run_generator.main(
        argv, env={}, connect=lambda config: store, artifacts=lambda config: artifacts
    )
    assert code == 0
    assert set(store.current_runs()) == {"survey"}
    run = store.current_run("survey")
    assert run.settings["fit"]["survey"]["traits"] >= 2

    client = create_app(
        store, Settings(pointer_cache_seconds=0), clock=Clock(), artifacts=artifacts
    ).test_client()
    handle = next(u for u in range(1, 400) if store.get_list(run, u) is not None)
    by_handle = client.get(f"/similar-users/{handle}?top_n=3&mutual_only=false")
    assert by_handle.status_code == 200, by_handle.get_json()
    assert by_handle.get_json()["data"]["model_handle"] == "survey"
    assert all("mutual" in u for u in by_handle.get_json()["data"]["similar_users"])
    questions = client.get("/catalogue?kind=answers&limit=100").get_json()["data"]["names"]
    answers = {question: 3 for question in questions}
    by_answers = client.post("/similar-users", json={"profile": {"answers": answers}})
    assert by_answers.status_code == 200, by_answers.get_json()
    assert by_answers.get_json()["request_data"]["traits"]


def test_tuning_weighs_the_survey_in_the_hybrid_like_any_other_block(tmp_path):
    from generator.synthetic import synthesize
    from generator.tables import load_tables
    from generator.tune import WEIGHT_GRID, tune

    synthesize(400, tmp_path, seed=6, survey=True)
    tuning = tune(load_tables(tmp_path), top_n_stored=10)
    assert "survey" in tuning.chosen
    assert tuning.weights["survey"] in WEIGHT_GRID
    hybrid = next(m for m in tuning.models() if m.handle == "hybrid")
    assert hybrid.settings["weights"]["survey"] == tuning.weights["survey"]
