"""The client: one method per API operation, typed results, one exception type for every refusal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from hypevolve_client.models import ImportResult, Study, Trial

DEFAULT_URL = "http://127.0.0.1:8000"


class ClientError(Exception):
    """The service refused a request (``status`` and its message, naming the field and value), or
    could not be reached (``status`` None)."""

    def __init__(self, message: str, status: int | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.errors = message, status, errors or []


class ServiceUnreachable(ClientError):
    """Nothing answered at the service's URL."""


# POST /studies checks a data set before it answers, and the first time that reads every label and
# image header (the data set report: about 50 s per 100,000 images on 2 cores): starting a study may
# take this long where every other call takes ``timeout``.
START_TIMEOUT_S = 900.0


class Client:
    """The hypevolve API at ``url``, with ``api_key`` when the service requires one."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- studies ---------------------------------------------------------------------------------

    def start_study(self, dataset: str, **fields: Any) -> Study:
        """POST /studies with ``dataset`` and any other request field (epochs=3, evolve=[...], ...)."""
        body = {"dataset": dataset, **fields}
        timeout = max(self._timeout, START_TIMEOUT_S)
        return Study.from_json(self._json("POST", "/studies", json=body, timeout=timeout))

    def studies(self) -> list[Study]:
        return [Study.from_json(s) for s in self._json("GET", "/studies")]

    def study(self, study_id: int) -> Study:
        return Study.from_json(self._json("GET", f"/studies/{study_id}"))

    def trials(self, study_id: int) -> list[Trial]:
        return [Trial.from_json(t) for t in self._json("GET", f"/studies/{study_id}/trials")]

    def stop(self, study_id: int) -> Study:
        return Study.from_json(self._json("POST", f"/studies/{study_id}/stop"))

    def resume(self, study_id: int) -> Study:
        return Study.from_json(self._json("POST", f"/studies/{study_id}/resume"))

    def delete(self, study_id: int) -> None:
        self._request("DELETE", f"/studies/{study_id}")

    def import_results(self, study_id: int, body: bytes, format: str | None = None) -> ImportResult:
        params = {"format": format} if format else None
        data = self._json("POST", f"/studies/{study_id}/import", content=body, params=params)
        return ImportResult(data["imported"], data["format"], list(data["trials"]))

    def hyp_yaml(self, study_id: int, source: str = "confirmation") -> str:
        """The study's answer as a YOLOv5 hyp file (``source="screening"``: the top screening trial)."""
        return self._request("GET", f"/studies/{study_id}/hyp.yaml", params={"source": source}).text

    def args_yaml(self, study_id: int, source: str = "confirmation") -> str:
        """The study's answer as ultralytics train arguments, for ``yolo train cfg=args.yaml``."""
        return self._request("GET", f"/studies/{study_id}/args.yaml", params={"source": source}).text

    def wait(self, study_id: int, poll_s: float = 2.0, on_update: Callable[[Study], None] | None = None) -> Study:
        """Poll until the study has ended (completed, stopped or failed); call ``on_update`` each time."""
        while True:
            study = self.study(study_id)
            if on_update is not None:
                on_update(study)
            if study.finished:
                return study
            time.sleep(poll_s)

    # -- transport -------------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"no hypevolve service answers at {self.url} ({type(exc).__name__})") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message, errors = str(body.get("detail", response.text)), body.get("errors")
            except ValueError:
                message, errors = response.text or response.reason_phrase, None
            raise ClientError(f"{response.status_code}: {message}", response.status_code, errors)
        return response
