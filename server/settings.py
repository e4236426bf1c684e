"""How the API answers: one immutable `Settings`, checked when it is made.

A setting that makes no sense fails where the program starts (run_server.py turns the environment
into `Settings`), never later, in the middle of a request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from server.cache import READY_SECONDS, RESULT_CACHE_MB, STALE_IF_ERROR_SECONDS
from server.default_model import AUTO
from server.query import MODEL_HANDLE_PATTERN, TOP_N_MAX, is_model_handle
from server.security import API_KEY_MIN_LENGTH, is_api_key, is_origin

MAX_BODY_BYTES = 65_536
PROFILE_EXACT_MAX_USERS = 200_000


@dataclass(frozen=True)
class Settings:
    """How the API answers; every field has a safe default.

    default_model: model used when a request names none; `auto`, the best measured current run.
    default_top_n: similar users returned when a request does not say how many.
    pointer_cache_seconds: how long each process reuses a model's run pointer (and /models).
    readiness_cache_seconds: how long each process reuses what the store said to /readyz.
    stale_if_error_seconds: while the store cannot be reached, how long after it was last read
        a model's run still answers the lists cached from it (0: a 503 once the pointer expires).
    result_cache_mb: memory (MB) each process gives to cached neighbour lists (0: none); always
        correct, since a run's lists never change and a new run is a new cache key.
    max_body_bytes: larger request bodies are refused with 413 (a profile of the most names
        allowed, each as long as allowed, needs about 64 KiB).
    retry_after_seconds: the Retry-After of 503 answers.
    api_key: when set, every route but /healthz, /readyz and /openapi.json needs it in the
        X-API-Key header (401 otherwise); None means no key is asked for.
    cors_origins: origins whose browser pages may call the API (`*` for any); empty means none.
    profile_exact_max_users: a profile is compared with every user of a run of up to this many
        users; above, with the users of the clusters nearest to it (if the run has clusters).
    artifact_cache_dir: where model artifacts fetched from S3 are kept (None: a folder under the
        system's temporary folder); an artifact that cannot be used is tried again after
        `retry_after_seconds`.
    """

    default_model: str = AUTO
    default_top_n: int = 5
    pointer_cache_seconds: float = 5.0
    readiness_cache_seconds: float = READY_SECONDS
    stale_if_error_seconds: float = STALE_IF_ERROR_SECONDS
    result_cache_mb: float = RESULT_CACHE_MB
    max_body_bytes: int = MAX_BODY_BYTES
    retry_after_seconds: int = 5
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr or a log
    cors_origins: tuple[str, ...] = ()
    profile_exact_max_users: int = PROFILE_EXACT_MAX_USERS
    artifact_cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not is_model_handle(self.default_model):
            raise ValueError(
                f"default_model must match {MODEL_HANDLE_PATTERN}, not {self.default_model!r}"
            )
        if not 1 <= self.default_top_n <= TOP_N_MAX:
            raise ValueError(f"default_top_n must be between 1 and {TOP_N_MAX}")
        for name in ("pointer_cache_seconds", "readiness_cache_seconds", "stale_if_error_seconds"):
            if not 0 <= getattr(self, name) < math.inf:  # nan too
                raise ValueError(f"{name} must be a finite number, not negative")
        if not 0 <= self.result_cache_mb < math.inf:  # nan too
            raise ValueError("result_cache_mb must be a finite number, not negative")
        if self.max_body_bytes < 64:
            raise ValueError("max_body_bytes must be at least 64")
        if self.profile_exact_max_users < 1:
            raise ValueError("profile_exact_max_users must be at least 1")
        if self.retry_after_seconds < 1:
            raise ValueError("retry_after_seconds must be at least 1")
        if self.api_key is not None and not is_api_key(self.api_key):
            # The key itself is never part of the message.
            raise ValueError(
                f"the API key must be at least {API_KEY_MIN_LENGTH} visible ASCII characters "
                "without spaces"
            )
        for origin in self.cors_origins:
            if not is_origin(origin):
                raise ValueError(
                    f"a CORS origin is scheme://host[:port] in lower case, or *, not {origin!r}"
                )
