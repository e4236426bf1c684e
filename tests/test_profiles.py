"""Profile queries: a newcomer's names matched to a model, placed in its space, neighbours found;
and the run's artifact, loaded once per run and never stale, or a 503 naming the run."""

from __future__ import annotations

import ast
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from server import Settings, create_app
from server.spaces import Spaces
from similarity.features import UserIndex
from similarity.models import MODELS
from similarity.space import SPACE_FILE
from store import Run, new_run_id
from store.artifacts import ArtifactCorruptError, ArtifactMissingError, FileArtifacts
from store.memory import MemoryStore
from tests.builders import PLATFORM_MODELS, SCRIPT_TAG, make_tables, people_spaces
from tests.fakes import (
    Clock,
    SpaceArtifacts,
    publish_lists,
    publish_space,
    space_lists,
    wait_for,
)

SERVED = ("interests", "course_views", "assessments", "hybrid")


@pytest.fixture(scope="module")
def spaces() -> dict[str, Any]:
    return people_spaces()


@pytest.fixture(scope="module")
def published(spaces, tmp_path_factory) -> tuple[MemoryStore, FileArtifacts]:
    """A store with a run of each served model, their artifacts kept in a local folder (shared
    by the tests that only read them)."""
    artifacts = FileArtifacts(tmp_path_factory.mktemp("artifacts"))
    store = MemoryStore()
    for handle in SERVED:
        publish_space(store, artifacts, spaces[handle])
    return store, artifacts


@pytest.fixture
def store(published) -> MemoryStore:
    return published[0]


@pytest.fixture
def artifacts(tmp_path: Path) -> FileArtifacts:
    return FileArtifacts(tmp_path / "artifacts")


def make_client(
    store: MemoryStore, artifacts: Any, clock: Clock | None = None, **settings: Any
) -> FlaskClient:
    settings.setdefault("pointer_cache_seconds", 0)
    settings.setdefault("default_model", "hybrid")
    app = create_app(store, Settings(**settings), clock=clock or Clock(), artifacts=artifacts)
    return app.test_client()


@pytest.fixture
def client(published, tmp_path) -> FlaskClient:
    store, artifacts = published
    return make_client(store, artifacts, artifact_cache_dir=tmp_path / "cache")


def ask(client: FlaskClient, profile: Any, **fields: Any) -> Any:
    return client.post("/similar-users", json={"profile": profile, **fields})


def handles(answer: dict[str, Any]) -> list[int]:
    return [u["user_handle"] for u in answer["data"]["similar_users"]]


# -- matching --------------------------------------------------------------------------------


def test_a_misspelt_interest_is_matched_fuzzily_and_reported(client):
    response = ask(client, {"interests": ["pythn"]}, model_handle="interests")

    assert response.status_code == 200, response.json
    assert response.json["request_data"]["matched"] == [
        {"kind": "interests", "input": "pythn", "name": "python", "how": "fuzzy", "score": 0.833}
    ]
    assert response.json["request_data"]["unmatched"] == []
    assert set(handles(response.json)) == {1, 2, 6}  # everyone who follows python


def test_a_name_written_another_way_is_matched_once_normalised(client):
    response = ask(client, {"courses": ["Python Beyond Basics"]}, model_handle="course_views")

    assert response.status_code == 200, response.json
    assert response.json["request_data"]["matched"] == [
        {
            "kind": "courses",
            "input": "Python Beyond Basics",
            "name": "python-beyond-basics",
            "how": "normalised",
        }
    ]
    assert handles(response.json) == [2, 1]  # the two who viewed it; 2 viewed nothing else


def test_names_that_match_nothing_are_listed_and_the_rest_answers(client):
    response = ask(client, {"interests": ["python", "cobol"]}, model_handle="interests")

    assert response.status_code == 200
    request_data = response.json["request_data"]
    assert [m["input"] for m in request_data["matched"]] == ["python"]
    assert request_data["matched"][0]["how"] == "exact"
    assert request_data["unmatched"] == [
        {
            "kind": "interests",
            "input": "cobol",
            "reason": "matches no interest of model 'interests'",
        }
    ]


def test_a_kind_the_model_does_not_read_is_reported_not_refused(client):
    profile = {"interests": ["python"], "courses": ["python-beyond-basics"]}

    response = ask(client, profile, model_handle="interests")

    assert response.status_code == 200
    (unmatched,) = response.json["request_data"]["unmatched"]
    assert unmatched["kind"] == "courses" and unmatched["input"] == "python-beyond-basics"
    assert "does not read courses" in unmatched["reason"]


def test_a_profile_with_nothing_usable_is_422_naming_each_name(client):
    profile = {"interests": ["cobol"], "courses": ["fortran-basics"]}

    response = ask(client, profile, model_handle="interests")

    assert response.status_code == 422
    invalid = {p["name"]: p["reason"] for p in response.json["invalid_params"]}
    assert invalid == {
        "profile.interests[0]": "'cobol' matches no interest of model 'interests'",
        "profile.courses[0]": "'fortran-basics' is not used: model 'interests' does not read "
        "courses",
    }


def test_a_profile_of_nothing_but_unmatched_names_is_422_naming_each(client):
    profile = {"interests": ["cobol", "fortran"], "assessments": [{"tag": "basic", "score": 1}]}

    response = ask(client, profile, model_handle="hybrid")

    assert response.status_code == 422
    assert [p["name"] for p in response.json["invalid_params"]] == [
        "profile.interests[0]",
        "profile.interests[1]",
        "profile.assessments[0].tag",
    ]


def test_names_that_match_but_carry_no_evidence_are_422_naming_the_profile(client):
    # The assessments model reads only scores above the tag's average.
    profile = {"assessments": [{"tag": "python", "score": 0}]}

    response = ask(client, profile, model_handle="assessments")

    assert response.status_code == 422
    (invalid,) = response.json["invalid_params"]
    assert invalid["name"] == "profile" and "no evidence" in invalid["reason"]


@pytest.mark.parametrize(
    "body",
    [{"model_handle": "interests"}, {"user_handle": 1, "profile": {"interests": ["python"]}}],
    ids=["neither", "both"],
)
def test_exactly_one_of_user_handle_and_profile_is_asked_for(client, body):
    response = client.post("/similar-users", json=body)

    assert response.status_code == 422
    assert sorted(p["name"] for p in response.json["invalid_params"]) == ["profile", "user_handle"]


# -- answers ---------------------------------------------------------------------------------


def test_the_answer_echoes_the_profile_with_defaults_filled_in(client, store):
    response = ask(client, {"interests": ["python"]})

    assert response.json["request_data"] == {
        "profile": {"interests": ["python"], "courses": [], "assessments": [], "answers": {}},
        "model_handle": "hybrid",
        "top_n": 5,
        "explain": False,
        "mutual_only": False,
        "matched": [{"kind": "interests", "input": "python", "name": "python", "how": "exact"}],
        "unmatched": [],
    }
    assert response.json["data"]["run_id"] == store.current_run("hybrid").run_id


def test_a_hybrid_profile_combines_interests_courses_and_assessments(client):
    interests_only = ask(client, {"interests": ["machine-learning"]}, explain=True)
    combined = ask(
        client,
        {
            "interests": ["machine-learning"],
            "courses": ["python-beyond-basics"],
            "assessments": [{"tag": "python", "score": 240}],
        },
        explain=True,
    )

    assert combined.status_code == 200
    # machine-learning alone: users 2 and 7 alike; the course and the score tell 2 apart
    assert set(handles(interests_only.json)) == {2, 7}
    first = combined.json["data"]["similar_users"][0]
    assert first["user_handle"] == 2
    assert {"interest", "course", "assessment"} <= {s["kind"] for s in first["shared"]}
    assert {m["kind"] for m in combined.json["request_data"]["matched"]} == {
        "interests",
        "courses",
        "assessments",
    }


@pytest.mark.parametrize("model", PLATFORM_MODELS)
def test_every_model_places_a_users_own_evidence_next_to_them(spaces, artifacts, tmp_path, model):
    store = MemoryStore()
    publish_space(store, artifacts, spaces[model])
    client = make_client(store, artifacts, artifact_cache_dir=tmp_path / "cache")
    profile = {
        "interests": ["python", "data-science"],
        "courses": ["python-beyond-basics", "pandas-fundamentals"],
        "assessments": [{"tag": "python", "score": 250}, {"tag": "java", "score": 90}],
    }

    response = ask(client, profile, model_handle=model, top_n=3)

    assert response.status_code == 200, response.json
    assert handles(response.json)[0] == 1  # user 1's own interests, courses and scores


def test_top_n_limits_a_profiles_similar_users(client):
    response = ask(client, {"interests": ["python"]}, model_handle="interests", top_n=2)

    # 1, 2 and 6 follow python and one other tag; 6's other tag is rarer, so weighs more
    assert handles(response.json) == [1, 2]


def test_a_profile_for_an_unknown_model_is_404(client):
    response = ask(client, {"interests": ["python"]}, model_handle="nope")

    assert response.status_code == 404
    assert response.json["title"] == "Unknown model"


def test_non_ascii_names_work(client):
    profile = {"interests": ["C++ Für Anfänger", "日本語"], "courses": ["c++ fur anfänger"]}

    response = ask(client, profile)

    assert response.status_code == 200
    assert [(m["name"], m["how"]) for m in response.json["request_data"]["matched"]] == [
        ("c++ für anfänger", "normalised"),
        ("日本語", "exact"),
        ("c++ für anfänger", "fuzzy"),
    ]
    assert handles(response.json) == [5]


def test_a_hostile_name_from_the_export_comes_back_as_plain_json_text(client):
    response = ask(client, {"interests": [SCRIPT_TAG.upper()]}, model_handle="interests")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.json["request_data"]["matched"][0]["name"] == SCRIPT_TAG
    assert handles(response.json)[0] == 6
    assert json.loads(response.data)["request_data"]["profile"]["interests"] == [SCRIPT_TAG.upper()]


# -- bad input -------------------------------------------------------------------------------

BAD_PROFILES = [  # (what, profile, the field named)
    ("not an object", ["python"], "profile"),
    ("a string", "python", "profile"),
    ("null", None, "profile"),
    ("empty", {}, "profile"),
    ("only empty lists", {"interests": [], "courses": []}, "profile"),
    ("unknown key", {"interests": ["python"], "skills": ["x"]}, "profile.skills"),
    ("interests not a list", {"interests": "python"}, "profile.interests"),
    ("too many interests", {"interests": ["python"] * 101}, "profile.interests"),
    ("too many courses", {"courses": [f"c{i}" for i in range(101)]}, "profile.courses"),
    ("a number", {"interests": ["python", "java", 5]}, "profile.interests[2]"),
    ("null name", {"courses": [None]}, "profile.courses[0]"),
    ("nested list", {"interests": [["python"]]}, "profile.interests[0]"),
    ("empty name", {"interests": [""]}, "profile.interests[0]"),
    ("blank name", {"interests": [" \t "]}, "profile.interests[0]"),
    ("too long", {"interests": ["x" * 201]}, "profile.interests[0]"),
    ("nul", {"interests": ["py\x00thon"]}, "profile.interests[0]"),
    ("newline", {"interests": ["py\nthon"]}, "profile.interests[0]"),
    ("C1 control", {"courses": ["a\x85b"]}, "profile.courses[0]"),
    ("escape", {"interests": ["\x1b[31mred"]}, "profile.interests[0]"),
    ("assessment not an object", {"assessments": ["python"]}, "profile.assessments[0]"),
    ("assessments not a list", {"assessments": {"python": 1}}, "profile.assessments"),
    ("no score", {"assessments": [{"tag": "python"}]}, "profile.assessments[0].score"),
    ("no tag", {"assessments": [{"score": 1}]}, "profile.assessments[0].tag"),
    (
        "text score",
        {"assessments": [{"tag": "python", "score": "180"}]},
        "profile.assessments[0].score",
    ),
    (
        "bool score",
        {"assessments": [{"tag": "python", "score": True}]},
        "profile.assessments[0].score",
    ),
    ("negative", {"assessments": [{"tag": "python", "score": -1}]}, "profile.assessments[0].score"),
    (
        "huge score",
        {"assessments": [{"tag": "python", "score": 10001}]},
        "profile.assessments[0].score",
    ),
    ("empty tag", {"assessments": [{"tag": "", "score": 1}]}, "profile.assessments[0].tag"),
    (
        "extra key",
        {"assessments": [{"tag": "python", "score": 1, "date": "2017"}]},
        "profile.assessments[0].date",
    ),
]


@pytest.mark.parametrize(
    ("what", "profile", "field"), BAD_PROFILES, ids=[b[0] for b in BAD_PROFILES]
)
def test_a_bad_profile_is_422_naming_the_field(client, what, profile, field):
    response = ask(client, profile)

    assert response.status_code == 422, response.json
    assert response.content_type == "application/problem+json"
    assert [p["name"] for p in response.json["invalid_params"]] == [field]


def test_an_infinite_score_is_422_naming_it(client):
    body = b'{"profile": {"assessments": [{"tag": "python", "score": 1e400}]}}'

    response = client.post("/similar-users", data=body, content_type="application/json")

    assert response.status_code == 422
    assert [p["name"] for p in response.json["invalid_params"]] == ["profile.assessments[0].score"]


def test_explain_must_be_a_boolean(client):
    response = ask(client, {"interests": ["python"]}, explain="yes")

    assert response.status_code == 422
    assert [p["name"] for p in response.json["invalid_params"]] == ["explain"]


def test_a_profile_of_the_most_names_allowed_fits_in_a_body(client):
    names = [f"{'x' * 190}{i:03d}" for i in range(100)]
    profile = {
        "interests": names,
        "courses": names,
        "assessments": [{"tag": "python", "score": 200}],
    }

    response = ask(client, profile)

    assert response.status_code == 200, response.json
    assert len(response.json["request_data"]["unmatched"]) == 200


# -- artifacts -------------------------------------------------------------------------------


def _flip_a_byte(folder: Path) -> None:
    path = folder / "matrix.data.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _folder(run: Run) -> Path:
    return Path(run.artifact["uri"].removeprefix("file://"))


def _wrong_format(folder: Path) -> None:
    described = json.loads((folder / SPACE_FILE).read_text())
    (folder / SPACE_FILE).write_text(json.dumps({**described, "format": 99}))


@pytest.mark.parametrize(
    "damage", ["none recorded", "missing", "corrupt", "wrong format", "no store"]
)
def test_an_unusable_artifact_is_503_naming_the_run_and_handles_still_answer(
    spaces, tmp_path, damage
):
    artifacts = FileArtifacts(tmp_path / "artifacts")
    store = MemoryStore()
    space = spaces["interests"]
    if damage == "wrong format":
        # a run whose artifact is sound as files but not a space this server reads
        run_id = new_run_id()
        folder = artifacts.stage("interests", run_id)
        space.write(folder)
        _wrong_format(folder)
        artifact = artifacts.put("interests", run_id, folder)
        run = publish_lists(
            store, space_lists(space), top_n=5, artifact=artifact.describe(), run_id=run_id
        )
    else:
        run = publish_space(store, artifacts, space, with_artifact=damage != "none recorded")
    if damage == "missing":
        for path in _folder(run).iterdir():
            path.unlink()
        _folder(run).rmdir()
    elif damage == "corrupt":
        _flip_a_byte(_folder(run))
    client = make_client(store, None if damage == "no store" else artifacts)

    profile = ask(client, {"interests": ["python"]}, model_handle="interests")
    explained = client.get("/similar-users/1?model_handle=interests&explain=true")
    plain = client.get("/similar-users/1?model_handle=interests")

    for response in (profile, explained):
        assert response.status_code == 503
        assert response.json["title"] == "Model artifact unavailable"
        assert run.run_id in response.json["detail"] and "'interests'" in response.json["detail"]
        assert response.headers["Retry-After"] == "5"
        assert str(tmp_path) not in response.json["detail"]  # where files are is not said
    assert plain.status_code == 200
    assert handles(plain.json) == [h for h, _ in space_lists(space)[1]]


def test_a_failed_artifact_is_tried_again_only_after_the_retry_period(spaces, tmp_path):
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    run = publish_space(store, artifacts, spaces["interests"])
    artifacts.broken[run.run_id] = ArtifactCorruptError("checksum differs")
    clock = Clock()
    client = make_client(
        store, artifacts, clock, artifact_cache_dir=tmp_path, retry_after_seconds=7
    )

    def status() -> int:
        return ask(client, {"interests": ["python"]}, model_handle="interests").status_code

    statuses = [status() for _ in range(3)]
    assert statuses == [503] * 3
    assert artifacts.fetches == 1  # remembered: not fetched (nor hashed) again per request

    del artifacts.broken[run.run_id]  # repaired
    clock.now += 6.9
    assert status() == 503
    clock.now += 0.1
    assert status() == 200
    assert artifacts.fetches == 2


def test_a_run_is_loaded_once_and_kept(spaces, tmp_path):
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    publish_space(store, artifacts, spaces["hybrid"])
    client = make_client(store, artifacts, artifact_cache_dir=tmp_path)

    for _ in range(3):
        assert ask(client, {"interests": ["python"]}).status_code == 200
        assert client.get("/similar-users/1?explain=true").status_code == 200

    assert artifacts.fetches == 1


def test_a_newly_published_run_is_answered_from_its_own_artifact(spaces, tmp_path):
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    first = publish_space(store, artifacts, spaces["interests"])
    client = make_client(store, artifacts, artifact_cache_dir=tmp_path)
    before = ask(client, {"interests": ["python"]}, model_handle="interests")
    # the next export: user 40 now follows python, and nobody else does
    tables = make_tables(interests=[(40, "python"), (41, "java")])
    second = publish_space(
        store, artifacts, MODELS["interests"].space(tables, UserIndex.of(tables))
    )

    after = ask(client, {"interests": ["python"]}, model_handle="interests")

    assert before.json["data"]["run_id"] == first.run_id
    assert after.json["data"]["run_id"] == second.run_id
    assert handles(after.json) == [40]
    assert artifacts.fetches == 2


def test_a_missing_artifact_of_a_run_replaced_meanwhile_answers_from_the_new_run(spaces, tmp_path):
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    first = publish_space(store, artifacts, spaces["interests"])
    clock = Clock()
    client = make_client(
        store, artifacts, clock, artifact_cache_dir=tmp_path, pointer_cache_seconds=60
    )
    client.get("/similar-users/1?model_handle=interests")  # the first run's pointer is cached
    second = publish_space(store, artifacts, spaces["interests"])
    artifacts.broken[first.run_id] = ArtifactMissingError("deleted by cleanup")
    clock.now += 1  # a pointer is read again at most once a second

    response = ask(client, {"interests": ["python"]}, model_handle="interests")

    assert response.status_code == 200
    assert response.json["data"]["run_id"] == second.run_id


def test_threads_asking_for_one_run_at_once_load_it_once(spaces, tmp_path):
    class Gated(SpaceArtifacts):
        def __init__(self) -> None:
            super().__init__()
            self.entered = threading.Event()
            self.gate = threading.Event()

        def fetch(self, artifact, cache):
            self.entered.set()
            assert self.gate.wait(30)
            return super().fetch(artifact, cache)

    artifacts = Gated()
    store = MemoryStore()
    run = publish_space(store, artifacts, spaces["interests"])
    loader = Spaces(artifacts, tmp_path)
    started = threading.Semaphore(0)
    got = []

    def load() -> None:
        started.release()
        got.append(loader.get(run))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert started.acquire(timeout=30)
    wait_for(artifacts.entered.is_set, "a thread fetching the artifact")
    artifacts.gate.set()
    for thread in threads:
        thread.join(30)

    assert artifacts.fetches == 1 and loader.loads == 1
    assert len(got) == 8 and all(loaded is got[0] for loaded in got)


def test_only_a_few_runs_per_model_stay_loaded(spaces, tmp_path):
    artifacts = SpaceArtifacts()
    store = MemoryStore()
    runs = [publish_space(store, artifacts, spaces["interests"]) for _ in range(3)]
    loader = Spaces(artifacts, tmp_path, runs_per_model=2)

    for run in runs:
        loader.get(run)
    loader.get(runs[2])
    loader.get(runs[1])
    loader.get(runs[0])  # dropped when the third was loaded: loaded again

    assert loader.loads == 4


def test_the_server_never_imports_the_generator():
    root = Path(__file__).resolve().parents[1]
    ours = {p.parent.name for p in root.glob("*/__init__.py")}
    reached, pending = set(), ["server"]
    while pending:
        package = pending.pop()
        reached.add(package)
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                pending += sorted({n.split(".")[0] for n in names} & ours - reached - set(pending))

    assert "generator" not in reached, sorted(reached)
    assert reached == {"server", "similarity", "store"}


def test_a_matched_name_that_adds_nothing_is_marked_so_never_silently_dropped(client):
    profile = {"interests": ["python"], "assessments": [{"tag": "python", "score": 0}]}
    answer = ask(client, profile, model_handle="hybrid")
    assert answer.status_code == 200
    by_kind = {m["kind"]: m for m in answer.get_json()["request_data"]["matched"]}
    assert by_kind["assessments"]["evidence"] is False  # at or below the tag's average
    assert "evidence" not in by_kind["interests"]
