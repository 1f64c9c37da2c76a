"""Request bodies over the limit get 413 and write nothing, whether or not they declare a length."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from service.api.limits import MAX_BODY_BYTES
from service.settings import Settings
from tests.helpers import nothing_written


def test_declared_large_body_gets_413(api: httpx.Client, settings: Settings) -> None:
    body = b'{"dataset": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = api.post("/studies", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body is larger than {MAX_BODY_BYTES} bytes"}
    nothing_written(settings)


def test_chunked_large_body_gets_413(api: httpx.Client, settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"dataset": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    # A generator body is sent chunked, without a Content-Length to refuse up front.
    response = api.post("/studies", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    nothing_written(settings)


def test_results_uploads_may_be_larger(api: httpx.Client) -> None:
    body = b"fitness,lr0\n" + b"0.1,0.01\n" * (2 * MAX_BODY_BYTES // 9)
    # Past the 1 MiB limit, within the import's 10 MiB: the request reaches the route (no study 7).
    assert api.post("/studies/7/import", content=body).status_code == 404
