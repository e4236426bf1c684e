"""Specification of the synthetic export: real format, real-looking statistics, real structure."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run_generator
from generator.synthetic import synthesize
from generator.synthetic.survey import BANK, GIVING_UP_AFTER, SKIPPED_SHARE
from generator.tables import load_tables

REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pluralsight-sample"

HEADERS = {
    "user_interests.csv": '"user_handle","interest_tag","date_followed"',
    "user_course_views.csv": (
        '"user_handle","view_date","course_id","author_handle","level","view_time_seconds"'
    ),
    "user_assessment_scores.csv": (
        '"user_handle","assessment_tag","user_assessment_date","user_assessment_score"'
    ),
    "course_tags.csv": '"course_id","course_tags"',
}
TIMESTAMP = r'"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"'
ROW_PATTERNS = {
    "user_interests.csv": rf'\d+,"[^"]+",{TIMESTAMP}',
    "user_course_views.csv": (
        r'\d+,"\d{4}-\d\d-\d\d","[^"]+",\d+,"(Beginner|Intermediate|Advanced)",\d+'
    ),
    "user_assessment_scores.csv": rf'\d+,"[^"]+",{TIMESTAMP},\d+',
    "course_tags.csv": r'"[^"]+","[^"]*"',
}
USERS = 2_000
SURVEY_HEADERS = {
    "user_answers.csv": '"user_handle","question_id","answer","answered_at"',
    "questions.csv": '"question_id","text","scale_min","scale_max","reverse_keyed"',
}
SURVEY_ROW_PATTERNS = {
    "user_answers.csv": rf'\d+,"q\d\d",[1-7],{TIMESTAMP}',
    "questions.csv": r'"q\d\d","[^"]+\.",1,[57],"(true|false)"',
}


def read(directory: Path, name: str) -> pd.DataFrame:
    """Read one export file keeping empty tags as empty strings."""
    return pd.read_csv(directory / name, keep_default_na=False)


def real_sample() -> Path:
    """Return the folder of the real sample files, skipping the test when it is absent."""
    if not REAL_SAMPLE.is_dir():
        pytest.skip(f"real sample not available at {REAL_SAMPLE}")
    return REAL_SAMPLE


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Write one mid-sized export shared by the read-only tests."""
    directory = tmp_path_factory.mktemp("export")
    return directory, synthesize(USERS, directory, seed=11)


@pytest.fixture(scope="module")
def tables(export: tuple[Path, dict[str, int]]) -> dict[str, pd.DataFrame]:
    """Load the shared export's four files."""
    return {name: read(export[0], name) for name in HEADERS}


@pytest.mark.parametrize("survey", [False, True])
def test_the_same_seed_writes_byte_identical_files(tmp_path: Path, survey: bool) -> None:
    synthesize(300, tmp_path / "a", seed=5, chunk_users=120, survey=survey)
    synthesize(300, tmp_path / "b", seed=5, chunk_users=120, survey=survey)
    names = [*HEADERS, *(SURVEY_HEADERS if survey else ())]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_different_seed_writes_different_users(tmp_path: Path) -> None:
    synthesize(300, tmp_path / "a", seed=5)
    synthesize(300, tmp_path / "b", seed=6)
    for name in ("user_interests.csv", "user_course_views.csv", "user_assessment_scores.csv"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_each_file_starts_with_the_quoted_header_line(
    export: tuple[Path, dict[str, int]], name: str
) -> None:
    with (export[0] / name).open(encoding="utf-8", newline="") as file:
        assert file.readline() == HEADERS[name] + "\n"


@pytest.mark.parametrize("name", ["course_tags.csv", "user_assessment_scores.csv"])
def test_header_lines_equal_the_real_files_header_lines(
    export: tuple[Path, dict[str, int]], name: str
) -> None:
    with (real_sample() / name).open(encoding="utf-8", newline="") as real:
        real_header = real.readline()
    with (export[0] / name).open(encoding="utf-8", newline="") as ours:
        assert ours.readline() == real_header


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_strings_are_quoted_integers_bare_and_lines_end_in_lf(
    export: tuple[Path, dict[str, int]], name: str
) -> None:
    content = (export[0] / name).read_bytes()
    assert b"\r" not in content
    assert content.endswith(b"\n")
    pattern = re.compile(ROW_PATTERNS[name])
    lines = content.decode("utf-8").split("\n")[1:-1]
    bad = [line for line in lines if not pattern.fullmatch(line)]
    assert lines
    assert bad == []


def test_returned_counts_are_the_data_rows_of_each_file(
    export: tuple[Path, dict[str, int]], tables: dict[str, pd.DataFrame]
) -> None:
    assert export[1] == {name: len(frame) for name, frame in tables.items()}


def test_every_user_from_one_to_n_follows_at_least_one_tag(
    tables: dict[str, pd.DataFrame],
) -> None:
    assert set(tables["user_interests.csv"]["user_handle"]) == set(range(1, USERS + 1))


def test_interests_are_sorted_by_user(tables: dict[str, pd.DataFrame]) -> None:
    assert tables["user_interests.csv"]["user_handle"].is_monotonic_increasing


def test_views_are_sorted_by_user_day_and_course(tables: dict[str, pd.DataFrame]) -> None:
    views = tables["user_course_views.csv"]
    keys = list(zip(views["user_handle"], views["view_date"], views["course_id"], strict=True))
    assert keys == sorted(keys)


def test_views_have_one_row_per_user_course_and_day(tables: dict[str, pd.DataFrame]) -> None:
    views = tables["user_course_views.csv"]
    assert not views.duplicated(["user_handle", "course_id", "view_date"]).any()


def test_every_viewed_course_is_in_the_catalogue(tables: dict[str, pd.DataFrame]) -> None:
    catalogue = set(tables["course_tags.csv"]["course_id"])
    assert set(tables["user_course_views.csv"]["course_id"]) <= catalogue


def test_each_course_has_one_author_and_one_level(tables: dict[str, pd.DataFrame]) -> None:
    per_course = tables["user_course_views.csv"].groupby("course_id")[["author_handle", "level"]]
    assert (per_course.nunique() == 1).all().all()


def test_no_user_takes_the_same_assessment_twice(tables: dict[str, pd.DataFrame]) -> None:
    scores = tables["user_assessment_scores.csv"]
    assert not scores.duplicated(["user_handle", "assessment_tag"]).any()


def test_catalogue_is_shaped_like_the_real_one(tables: dict[str, pd.DataFrame]) -> None:
    tags = tables["course_tags.csv"]
    per_course = tags.groupby("course_id").size()
    assert 5_000 <= len(per_course) <= 7_000
    assert 800 <= tags.loc[tags["course_tags"] != "", "course_tags"].nunique() <= 1_200
    assert 1.5 <= per_course.mean() <= 2.5
    assert per_course.max() <= 15
    assert (tags["course_tags"] == "").sum() > 0


def test_interest_rows_per_user_are_skewed_like_the_real_ones(
    tables: dict[str, pd.DataFrame],
) -> None:
    interests = tables["user_interests.csv"]
    per_user = interests.groupby("user_handle").size()
    assert 18 <= per_user.mean() <= 45
    assert 7 <= per_user.median() <= 20
    assert 0.05 <= (per_user == 1).mean() <= 0.2
    assert 0.02 <= (per_user >= 100).mean() <= 0.1
    assert per_user.max() >= 300
    assert 0.02 <= interests.duplicated().mean() <= 0.12


def test_most_users_follow_all_their_tags_at_one_time(tables: dict[str, pd.DataFrame]) -> None:
    times = tables["user_interests.csv"].groupby("user_handle")["date_followed"].nunique()
    assert 0.7 <= (times == 1).mean() <= 0.95


def test_course_views_are_shaped_like_the_real_ones(tables: dict[str, pd.DataFrame]) -> None:
    views = tables["user_course_views.csv"]
    courses = views.groupby("user_handle")["course_id"].nunique()
    pairs = views.groupby(["user_handle", "course_id"]).ngroups
    assert 0.8 <= len(courses) / USERS <= 0.95
    assert 7 <= courses.mean() <= 18
    assert 3 <= courses.median() <= 8
    assert 1.8 <= len(views) / pairs <= 3.2


def test_view_time_is_right_skewed_around_the_real_mean(tables: dict[str, pd.DataFrame]) -> None:
    seconds = tables["user_course_views.csv"]["view_time_seconds"]
    assert 1_400 <= seconds.mean() <= 2_200
    assert 1_600 <= seconds.std() <= 2_800
    assert seconds.median() < seconds.mean()
    assert seconds.min() >= 0
    assert seconds.max() <= 44_410


def test_levels_are_mostly_beginner_and_intermediate(tables: dict[str, pd.DataFrame]) -> None:
    shares = tables["user_course_views.csv"]["level"].value_counts(normalize=True)
    assert 0.35 <= shares["Beginner"] <= 0.6
    assert 0.35 <= shares["Intermediate"] <= 0.6
    assert 0.01 <= shares["Advanced"] <= 0.12


def test_assessments_are_taken_by_about_a_third_with_real_score_range(
    tables: dict[str, pd.DataFrame],
) -> None:
    scores = tables["user_assessment_scores.csv"]
    per_user = scores.groupby("user_handle").size()
    assert 0.22 <= len(per_user) / USERS <= 0.4
    assert 1.5 <= per_user.mean() <= 2.8
    assert per_user.max() <= 15
    assert scores["user_assessment_score"].between(0, 298).all()
    assert 120 <= scores["user_assessment_score"].mean() <= 165
    assert 40 <= scores["user_assessment_score"].std() <= 70


@pytest.mark.parametrize(
    ("name", "column", "first", "last"),
    [
        ("user_interests.csv", "date_followed", "2017-05-03", "2017-11-28 23:59:59"),
        ("user_course_views.csv", "view_date", "2017-05-01", "2017-11-28"),
        ("user_assessment_scores.csv", "user_assessment_date", "2016-07-13", "2017-11-28 23:59:59"),
    ],
)
def test_dates_fall_in_the_real_windows(
    tables: dict[str, pd.DataFrame], name: str, column: str, first: str, last: str
) -> None:
    dates = tables[name][column]
    assert dates.min() >= first
    assert dates.max() <= last


def jaccard(items: pd.DataFrame, pairs: pd.DataFrame) -> float:
    """Return the mean Jaccard overlap of the item sets of the (user_a, user_b) pairs."""
    pairs = pairs.reset_index(drop=True).rename_axis("pair").reset_index()
    of_a = pairs.merge(items.rename(columns={"user": "user_a"}), on="user_a")
    both = of_a.merge(items.rename(columns={"user": "user_b"}), on=["user_b", "item"])
    shared = both.groupby("pair").size().reindex(pairs["pair"], fill_value=0).to_numpy()
    sizes = items.groupby("user").size()
    union = (
        sizes.reindex(pairs["user_a"], fill_value=0).to_numpy()
        + sizes.reindex(pairs["user_b"], fill_value=0).to_numpy()
        - shared
    )
    return float(np.mean(shared / union))


def random_pairs(users: np.ndarray, count: int) -> pd.DataFrame:
    """Draw distinct-user pairs uniformly at random."""
    rng = np.random.default_rng(0)
    a, b = rng.choice(users, count), rng.choice(users, count)
    return pd.DataFrame({"user_a": a, "user_b": b})[a != b]


def test_users_with_the_same_early_main_tag_share_later_courses(
    tables: dict[str, pd.DataFrame],
) -> None:
    views = tables["user_course_views.csv"]
    # Views are sorted by user and day, so a pair's first row is its first day.
    first_seen = views.drop_duplicates(["user_handle", "course_id"])
    by_user = first_seen.groupby("user_handle")
    first_seen = first_seen.assign(
        position=by_user.cumcount(), length=by_user["course_id"].transform("size")
    )
    first_seen = first_seen[first_seen["length"] >= 4]
    early = first_seen[first_seen["position"] < first_seen["length"] / 2]
    later = first_seen[first_seen["position"] >= first_seen["length"] / 2]

    tags = tables["course_tags.csv"]
    tags = tags[tags["course_tags"] != ""]
    main_tag = (
        early.merge(tags, on="course_id")
        .groupby(["user_handle", "course_tags"])
        .size()
        .reset_index(name="n")
        .sort_values(["user_handle", "n", "course_tags"], ascending=[True, False, True])
        .drop_duplicates("user_handle")[["user_handle", "course_tags"]]
    )
    same = main_tag.merge(main_tag, on="course_tags", suffixes=("_a", "_b"))
    same = same[same["user_handle_a"] < same["user_handle_b"]]
    same_pairs = same.rename(columns={"user_handle_a": "user_a", "user_handle_b": "user_b"})
    later_items = later.rename(columns={"user_handle": "user", "course_id": "item"})

    together = jaccard(later_items, same_pairs[["user_a", "user_b"]])
    apart = jaccard(later_items, random_pairs(main_tag["user_handle"].to_numpy(), 20_000))
    assert len(same_pairs) >= 200
    assert together > 3 * apart


def test_users_with_similar_interests_view_similar_courses(
    tables: dict[str, pd.DataFrame],
) -> None:
    interests = tables["user_interests.csv"].drop_duplicates(["user_handle", "interest_tag"])
    interests = interests.rename(columns={"user_handle": "user", "interest_tag": "item"})
    views = tables["user_course_views.csv"].drop_duplicates(["user_handle", "course_id"])
    views = views.rename(columns={"user_handle": "user", "course_id": "item"})
    viewers = views["user"].unique()
    # Heavy followers share tags with everyone; leaving them out keeps the pair table small.
    light = interests[interests["user"].isin(viewers)]
    light = light[light.groupby("user")["item"].transform("size") <= 60]

    # Each user's best interest neighbour: the other user sharing the largest share of tags.
    shared = (
        light.merge(light, on="item", suffixes=("_a", "_b"))
        .query("user_a != user_b")
        .groupby(["user_a", "user_b"])
        .size()
        .rename("shared")
        .reset_index()
    )
    size = light.groupby("user").size()
    shared["score"] = shared["shared"] / np.sqrt(
        size.reindex(shared["user_a"]).to_numpy() * size.reindex(shared["user_b"]).to_numpy()
    )
    best = shared.sort_values(["user_a", "score", "user_b"], ascending=[True, False, True])
    best = best.drop_duplicates("user_a")[["user_a", "user_b"]]

    neighbours = jaccard(views, best)
    strangers = jaccard(views, random_pairs(best["user_a"].to_numpy(), 20_000))
    assert len(best) >= 1_000
    assert neighbours > 3 * strangers


def test_with_the_real_catalogue_the_real_course_ids_are_used(tmp_path: Path) -> None:
    sample = real_sample()
    synthesize(300, tmp_path, seed=3, catalogue_dir=sample)
    real_courses = read(sample, "course_tags.csv")
    ours = read(tmp_path, "course_tags.csv")
    assert set(ours["course_id"]) == set(real_courses["course_id"])
    assert set(read(tmp_path, "user_course_views.csv")["course_id"]) <= set(
        real_courses["course_id"]
    )
    real_tags = set(read(sample, "user_assessment_scores.csv")["assessment_tag"])
    assert set(read(tmp_path, "user_assessment_scores.csv")["assessment_tag"]) <= real_tags


def test_progress_receives_increasing_counts_ending_at_n(tmp_path: Path) -> None:
    seen: list[int] = []
    synthesize(250, tmp_path, progress=seen.append, chunk_users=100)
    assert seen == [100, 200, 250]
    assert read(tmp_path, "user_interests.csv")["user_handle"].max() == 250


def test_a_single_chunk_reports_progress_once(tmp_path: Path) -> None:
    seen: list[int] = []
    synthesize(40, tmp_path, progress=seen.append)
    assert seen == [40]


@pytest.mark.parametrize(("users", "seed"), [(0, 0), (-3, 0), (10, -1)])
def test_impossible_arguments_are_rejected(tmp_path: Path, users: int, seed: int) -> None:
    with pytest.raises(ValueError):
        synthesize(users, tmp_path, seed=seed)


def test_a_chunk_of_no_users_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_users"):
        synthesize(10, tmp_path, chunk_users=0)


def test_a_catalogue_folder_without_export_files_falls_back_to_the_built_in_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty").mkdir()
    synthesize(50, tmp_path / "a", seed=2, catalogue_dir=tmp_path / "empty")
    synthesize(50, tmp_path / "b", seed=2)
    for name in HEADERS:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_assessment_tags_and_scores_come_from_a_given_assessment_file(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    (catalogue / "user_assessment_scores.csv").write_text(
        '"user_handle","assessment_tag","user_assessment_date","user_assessment_score"\n'
        '1,"kotlin-basics","2017-01-02 03:04:05",10\n'
        '1,"rust-basics","2017-01-02 03:14:05",20\n'
        '2,"kotlin-basics","2017-02-02 03:04:05",15\n'
        '3,"zig-basics","2017-03-02 03:04:05",12\n'
    )
    synthesize(400, tmp_path / "out", catalogue_dir=catalogue)
    scores = read(tmp_path / "out", "user_assessment_scores.csv")
    assert len(scores) > 0
    assert set(scores["assessment_tag"]) <= {"kotlin-basics", "rust-basics", "zig-basics"}
    assert scores["user_assessment_score"].between(10, 20).all()


def test_a_score_that_is_not_a_number_is_reported_with_file_line_and_column(
    tmp_path: Path,
) -> None:
    (tmp_path / "user_assessment_scores.csv").write_text(
        '"user_handle","assessment_tag","user_assessment_date","user_assessment_score"\n'
        '1,"kotlin-basics","2017-01-02 03:04:05",10\n'
        '2,"kotlin-basics","2017-01-02 03:04:05",high\n'
    )
    with pytest.raises(ValueError, match=r"user_assessment_scores\.csv, line 3, column user_ass"):
        synthesize(10, tmp_path / "out", catalogue_dir=tmp_path)


# --- the survey (synthesize --survey) --------------------------------------------------------


@pytest.fixture(scope="module")
def survey_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Write the shared export's users again, with a survey."""
    directory = tmp_path_factory.mktemp("survey")
    return directory, synthesize(USERS, directory, seed=11, survey=True)


@pytest.fixture(scope="module")
def answers(survey_export: tuple[Path, dict[str, int]]) -> pd.DataFrame:
    """Return the survey's answers as written, repeated answers included."""
    return read(survey_export[0], "user_answers.csv")


@pytest.fixture(scope="module")
def questions(survey_export: tuple[Path, dict[str, int]]) -> pd.DataFrame:
    """Return the survey's questions with the trait each one was written for."""
    frame = read(survey_export[0], "questions.csv")
    trait_of = {text: trait for trait, _, text in BANK}
    return frame.assign(
        trait=frame["text"].map(trait_of),
        reverse_keyed=frame["reverse_keyed"].astype(str).str.lower() == "true",
    ).set_index("question_id")


def answered(answers: pd.DataFrame) -> pd.DataFrame:
    """Return users × questions of each user's latest answers (NaN where not answered)."""
    latest = answers.sort_values("answered_at", kind="stable").drop_duplicates(
        ["user_handle", "question_id"], keep="last"
    )
    return latest.pivot(index="user_handle", columns="question_id", values="answer")


def test_the_survey_files_are_written_only_when_asked_for(
    export: tuple[Path, dict[str, int]], survey_export: tuple[Path, dict[str, int]]
) -> None:
    assert sorted(p.name for p in export[0].iterdir()) == sorted(HEADERS)
    assert sorted(p.name for p in survey_export[0].iterdir()) == sorted([*HEADERS, *SURVEY_HEADERS])
    assert survey_export[1] == {
        **export[1],
        "user_answers.csv": len(read(survey_export[0], "user_answers.csv")),
        "questions.csv": len(read(survey_export[0], "questions.csv")),
    }


@pytest.mark.parametrize("name", sorted(HEADERS))
def test_a_survey_leaves_the_four_files_as_they_are_without_one(
    export: tuple[Path, dict[str, int]], survey_export: tuple[Path, dict[str, int]], name: str
) -> None:
    assert (survey_export[0] / name).read_bytes() == (export[0] / name).read_bytes()


@pytest.mark.parametrize("name", sorted(SURVEY_HEADERS))
def test_the_survey_files_are_in_the_exports_format(
    survey_export: tuple[Path, dict[str, int]], name: str
) -> None:
    content = (survey_export[0] / name).read_bytes()
    assert b"\r" not in content and content.endswith(b"\n")
    header, *lines = content.decode("utf-8").split("\n")[:-1]
    assert header == SURVEY_HEADERS[name]
    pattern = re.compile(SURVEY_ROW_PATTERNS[name])
    assert lines
    assert [line for line in lines if not pattern.fullmatch(line)] == []


def test_the_survey_loads_with_no_rejected_row(survey_export: tuple[Path, dict[str, int]]) -> None:
    tables = load_tables(survey_export[0])
    assert tables.report.rejected == []
    assert tables.user_answers is not None and tables.questions is not None
    assert set(tables.user_answers["user_handle"]) == set(range(1, USERS + 1))
    assert not tables.user_answers.duplicated(["user_handle", "question_id"]).any()


def test_the_questions_are_likert_items_on_five_or_seven_points(questions: pd.DataFrame) -> None:
    assert 24 <= len(questions) <= 40
    assert questions.index.is_unique
    assert set(zip(questions["scale_min"], questions["scale_max"], strict=True)) == {(1, 5), (1, 7)}
    assert 0.15 <= questions["reverse_keyed"].mean() <= 0.4
    assert questions["trait"].notna().all()
    assert (questions.groupby("trait").size() >= 4).all()


def test_answers_stay_on_their_questions_scale(
    answers: pd.DataFrame, questions: pd.DataFrame
) -> None:
    scale = questions.loc[answers["question_id"]]
    assert (answers["answer"].to_numpy() >= scale["scale_min"].to_numpy()).all()
    assert (answers["answer"].to_numpy() <= scale["scale_max"].to_numpy()).all()
    # Answers use the whole scale, the middle most.
    counts = answers.loc[answers["question_id"].isin(questions.index[questions["scale_max"] == 5])]
    shares = counts["answer"].value_counts(normalize=True)
    assert set(shares.index) == {1, 2, 3, 4, 5}
    assert shares.idxmax() in (3, 4) and shares.min() >= 0.03


def test_items_of_one_trait_agree_and_reverse_keyed_ones_disagree_with_the_others(
    answers: pd.DataFrame, questions: pd.DataFrame
) -> None:
    correlation = answered(answers).corr()
    reverse = questions["reverse_keyed"]
    for question, row in questions.iterrows():
        same = questions.index[(questions["trait"] == row["trait"]) & ~reverse]
        others = correlation.loc[question, same.drop(question, errors="ignore")].mean()
        if reverse[question]:
            assert others < -0.2, question
        else:
            assert others > 0.25, question
    apart = questions["trait"].to_numpy()[:, None] != questions["trait"].to_numpy()[None, :]
    assert np.abs(correlation.to_numpy()[apart]).mean() < 0.15


def test_users_skip_some_questions_and_a_few_give_up_early(
    answers: pd.DataFrame, questions: pd.DataFrame
) -> None:
    per_user = answered(answers).notna().sum(axis=1)
    few = per_user <= GIVING_UP_AFTER[1]
    assert 0.03 <= few.mean() <= 0.07
    assert per_user[few].min() >= GIVING_UP_AFTER[0]
    skipped = 1 - per_user[~few] / len(questions)
    low, high = SKIPPED_SHARE
    assert skipped.between(low, high).all()
    assert skipped.std() > 0


def test_a_few_questions_are_answered_again_later_and_the_loader_keeps_the_latest(
    survey_export: tuple[Path, dict[str, int]], answers: pd.DataFrame
) -> None:
    pair = ["user_handle", "question_id"]
    again = answers[answers.duplicated(pair, keep=False)]
    users = again["user_handle"].nunique()
    assert 0.01 * USERS <= users <= 0.06 * USERS
    first = again.drop_duplicates(pair, keep="first").set_index(pair)["answered_at"]
    last = again.drop_duplicates(pair, keep="last").set_index(pair)["answered_at"]
    assert (last > first).all()
    report = load_tables(survey_export[0]).report
    assert report.answers_superseded == len(again) - len(first)


def test_answers_are_sorted_by_user_and_time_within_the_exports_window(
    answers: pd.DataFrame,
) -> None:
    keys = list(zip(answers["user_handle"], answers["answered_at"], strict=True))
    assert keys == sorted(keys)
    assert answers["answered_at"].min() >= "2017-05-03"
    assert answers["answered_at"].max() <= "2017-11-28 23:59:59"


def test_synthesizing_without_a_survey_removes_an_earlier_one(tmp_path: Path) -> None:
    synthesize(30, tmp_path, seed=1, survey=True)
    synthesize(30, tmp_path, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(HEADERS)


def test_the_command_line_writes_a_survey_when_asked(tmp_path: Path) -> None:
    argv = ["synthesize", "--users", "40", "--out", str(tmp_path), "--survey"]
    assert run_generator.main(argv, env={}) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*HEADERS, *SURVEY_HEADERS])
