"""Request body size limits: 413 before the app sees a large body, whether or not it says its length."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.studies.result_files import MAX_IMPORT_BYTES

MAX_BODY_BYTES = 1 << 20
# Uploaded results files (an evolve.csv, a tune_results.ndjson with metrics) are larger.
MAX_IMPORT_BODY_BYTES = MAX_IMPORT_BYTES


def limit_for(path: str) -> int:
    return MAX_IMPORT_BODY_BYTES if path.endswith("/import") else MAX_BODY_BYTES


class BodySizeLimitMiddleware:
    """Reads the body (at most the limit) before the app does, then hands it on. Counting inside the
    app's own reads would not do: FastAPI turns any error while reading into a 400."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(limit, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(limit, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"detail": f"request body is larger than {limit} bytes"}, status_code=413)
        await response(scope, receive, send)
