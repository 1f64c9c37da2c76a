"""The client's typed answers against the service's OpenAPI schema: the client keeps its own copies
(it imports nothing of the server), so this is what keeps them from drifting apart."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

from hypevolve_client import models
from service.api.app import create_app
from service.settings import Settings

# Client class -> the schema it reads.
SHAPES = {
    models.Study: "StudyOut",
    models.Trial: "TrialOut",
    models.Best: "BestOut",
    models.Confirmation: "ConfirmationOut",
    models.ConfirmedEntry: "ConfirmedOut",
    models.VsBaseline: "VsBaseline",
    models.ImportResult: "ImportOut",
    models.PlannedEpochs: "PlannedEpochsOut",
}


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(HOME=home, DATA_ROOT=Path(home), DATABASE_URL=f"sqlite:///{home}/db.sqlite")
    components: dict[str, Any] = create_app(settings).openapi()["components"]["schemas"]
    return components


def _enum(schema: dict[str, Any]) -> set[str]:
    """The values a (possibly nullable) string-literal property takes."""
    options = schema.get("anyOf", [schema])
    return {value for option in options for value in option.get("enum", [])}


@pytest.mark.parametrize("client_class", list(SHAPES), ids=lambda c: c.__name__)
def test_every_client_field_is_a_field_of_the_answer(client_class: type, schemas: dict[str, Any]) -> None:
    properties = schemas[SHAPES[client_class]]["properties"]
    fields = {f.name for f in dataclasses.fields(client_class)}
    # A client field the service does not send would always read its default.
    assert fields <= set(properties), fields - set(properties)


def test_the_client_literals_are_the_services(schemas: dict[str, Any]) -> None:
    assert set(typing.get_args(models.Stage)) == _enum(schemas["TrialOut"]["properties"]["stage"])
    assert set(typing.get_args(models.Stage)) == _enum(schemas["StudyOut"]["properties"]["stage"])
    assert set(typing.get_args(models.StudyStateName)) == _enum(schemas["StudyState"])
    assert set(typing.get_args(models.TrialStateName)) == _enum(schemas["TrialOut"]["properties"]["state"])
    assert set(typing.get_args(models.Verdict)) == _enum(schemas["ConfirmationOut"]["properties"]["verdict"])


def test_a_study_request_is_shown_with_the_request_schema(schemas: dict[str, Any]) -> None:
    # StudyOut.request is the request as the service took it: the same schema as POST /studies reads.
    assert schemas["StudyOut"]["properties"]["request"] == {"$ref": "#/components/schemas/StudyRequest"}
