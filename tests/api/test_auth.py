"""Login, tokens, the JWT secret and login rate limiting."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from circman5.api.app import create_app
from circman5.api.auth import (
    LoginRateLimiter,
    RateLimited,
    TokenService,
    load_or_create_secret,
    resolve_secret,
)
from circman5.api.context import ApiContext
from circman5.errors import AuthError, ConfigError
from circman5.settings import ApiSettings
from tests.api.conftest import JWT_SECRET, password_of


class Clock:
    """A settable clock for the rate limiter's sliding window."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def login(client: TestClient, username: str, password: str) -> object:
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_login_returns_a_token_with_sub_role_and_exp(client: TestClient) -> None:
    response = login(client, "engineer", password_of("engineer"))
    assert response.status_code == 200  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["token_type"] == "bearer"
    assert body["role"] == "engineer"
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"], issuer="circman5")
    assert claims["sub"] == "engineer"
    assert claims["role"] == "engineer"
    assert claims["exp"] == body["expires_at"]
    assert claims["exp"] - claims["iat"] == ApiSettings().token_ttl_s
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json() == {
        "username": "engineer",
        "role": "engineer",
        "level": 60,
        "roles": ["engineer", "operator", "viewer"],
    }


@pytest.mark.parametrize(("username", "password"), [("engineer", "wrong-pass"), ("ghost", "x" * 9)])
def test_wrong_credentials_get_401_without_saying_which(
    client: TestClient, username: str, password: str
) -> None:
    response = login(client, username, password)
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert response.json() == {"detail": "wrong username or password"}  # type: ignore[attr-defined]


def test_login_input_is_validated(client: TestClient) -> None:
    assert client.post("/api/auth/login", json={"username": "a"}).status_code == 422
    assert client.post("/api/auth/login", content=b"{not json").status_code == 422
    too_long = {"username": "a" * 65, "password": "b"}
    assert client.post("/api/auth/login", json=too_long).status_code == 422


def test_five_failures_per_user_per_minute_then_429_with_retry_after(
    make_context: Callable[..., ApiContext],
) -> None:
    clock = Clock()
    context = make_context(login_limiter=LoginRateLimiter(clock=clock))
    with TestClient(create_app(context)) as client:
        for _ in range(5):
            assert login(client, "operator", "bad-password").status_code == 401  # type: ignore[attr-defined]
        blocked = login(client, "operator", password_of("operator"))
        assert blocked.status_code == 429  # type: ignore[attr-defined]
        assert int(blocked.headers["Retry-After"]) == 60  # type: ignore[attr-defined]
        # other users are not blocked by one user's failures
        assert login(client, "viewer", password_of("viewer")).status_code == 200  # type: ignore[attr-defined]
        clock.now += 30
        retry = login(client, "operator", password_of("operator"))
        assert retry.status_code == 429  # type: ignore[attr-defined]
        assert int(retry.headers["Retry-After"]) == 30  # type: ignore[attr-defined]
        clock.now += 30.5
        assert login(client, "operator", password_of("operator")).status_code == 200  # type: ignore[attr-defined]


def test_failures_from_one_address_are_limited_across_usernames(
    make_context: Callable[..., ApiContext],
) -> None:
    clock = Clock()
    limiter = LoginRateLimiter(max_per_user=5, max_per_ip=8, clock=clock)
    context = make_context(login_limiter=limiter)
    with TestClient(create_app(context)) as client:
        for i in range(8):
            assert login(client, f"guess{i}", "bad-password").status_code == 401  # type: ignore[attr-defined]
        response = login(client, "admin", password_of("admin"))
        assert response.status_code == 429  # type: ignore[attr-defined]
        assert "Retry-After" in response.headers  # type: ignore[attr-defined]
    assert limiter.blocked == 1


def test_a_success_forgets_the_users_failures() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(max_per_user=3, max_per_ip=100, clock=clock)
    for _ in range(2):
        limiter.fail(limiter.begin("alice", "10.0.0.1"))
    limiter.succeed(limiter.begin("Alice", "10.0.0.1"))  # usernames are case-insensitive
    for _ in range(3):
        limiter.fail(limiter.begin("alice", "10.0.0.1"))
    with pytest.raises(RateLimited) as err:
        limiter.begin("alice", "10.0.0.2")
    assert err.value.retry_after == 60


def test_attempts_in_flight_count_against_the_limit() -> None:
    limiter = LoginRateLimiter(max_per_user=2, max_per_ip=100, clock=Clock())
    limiter.begin("bob", "a")
    limiter.begin("bob", "b")  # neither finished yet
    with pytest.raises(RateLimited):
        limiter.begin("bob", "c")


def test_the_limiter_tracks_a_bounded_number_of_keys() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(max_keys=100, clock=clock)
    for i in range(1000):
        limiter.fail(limiter.begin(f"user{i}", f"10.0.{i // 250}.{i % 250}"))
    assert len(limiter._failures) <= 100


def test_generated_secret_is_kept_0600_and_reused(isolated_data_dir: Path) -> None:
    first = load_or_create_secret()
    path = isolated_data_dir / "api" / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_or_create_secret() == first
    assert resolve_secret(None) == first


def test_secret_file_with_loose_permissions_is_tightened(isolated_data_dir: Path) -> None:
    load_or_create_secret()
    path = isolated_data_dir / "api" / "jwt_secret"
    path.chmod(0o644)
    load_or_create_secret()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configured_secret_is_used_and_must_be_long_enough() -> None:
    assert resolve_secret("s" * 32) == "s" * 32
    with pytest.raises(ConfigError, match="jwt_secret"):
        resolve_secret("short")


def test_context_takes_the_secret_from_settings(make_context: Callable[..., ApiContext]) -> None:
    settings = ApiSettings(jwt_secret="k" * 40, token_ttl_s=600)  # type: ignore[arg-type]
    context = make_context(jwt_secret=None, settings=settings)
    token, _ = context.tokens.issue("viewer", "viewer")
    assert jwt.decode(token, "k" * 40, algorithms=["HS256"], issuer="circman5")["sub"] == "viewer"
    assert context.tokens.ttl_s == 600


def test_token_service_rejects_tampering_and_expiry() -> None:
    clock = Clock()
    clock.now = 1_700_000_000.0
    service = TokenService("z" * 40, ttl_s=60, clock=clock, leeway_s=0)
    token, expires = service.issue("eve", "viewer")
    assert expires == 1_700_000_060
    assert service.verify(token).role == "viewer"
    header, payload, signature = token.split(".")
    with pytest.raises(AuthError):
        service.verify(f"{header}.{payload}.{signature[::-1]}")
    none_alg = jwt.encode({"sub": "eve", "role": "admin"}, key=None, algorithm="none")
    with pytest.raises(AuthError):
        service.verify(none_alg)
    clock.now += 61
    with pytest.raises(AuthError, match="expired"):
        service.verify(token)


def test_removed_user_cannot_use_their_token(
    client: TestClient, auth: Callable[[str], dict[str, str]], users: object
) -> None:
    headers = auth("operator")
    assert client.get("/api/state", headers=headers).status_code == 200
    users.remove("operator")  # type: ignore[attr-defined]
    assert client.get("/api/state", headers=headers).status_code == 401
