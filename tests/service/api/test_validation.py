"""Bad requests through real HTTP: a 4xx naming the field and the value, and nothing written."""

from __future__ import annotations

import codecs
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.schemas import StudyRequest
from service.settings import Settings
from tests.conftest import LiveServer, copy_dataset, make_settings
from tests.helpers import nothing_written
from tests.service.studies.plan_refusals import REFUSALS


@pytest.fixture(scope="module")
def served(
    module_database_url: str, shapes_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Settings]]:
    """One live API per database backend for the whole module, on a data root holding the sample
    data set at shapes/. Every request here is refused and every test checks that nothing was
    written, so no test can see another's traces (one that wrote would fail there, and after)."""
    data_root = tmp_path_factory.mktemp("data")
    copy_dataset(shapes_root, data_root)
    settings = make_settings(tmp_path_factory.mktemp("home"), data_root, DATABASE_URL=module_database_url)
    with LiveServer(settings) as client:
        yield client, settings


@pytest.fixture
def api(served: tuple[httpx.Client, Settings]) -> httpx.Client:
    return served[0]


@pytest.fixture
def settings(served: tuple[httpx.Client, Settings]) -> Settings:
    return served[1]


@pytest.fixture
def shapes(settings: Settings) -> str:
    """The sample data set, shared by the module's tests: read, never changed."""
    return "shapes/data.yaml"


@pytest.fixture
def own_shapes(settings: Settings, shapes_root: Path) -> str:
    """A copy of the sample data set for one test to change."""
    name = f"shapes-{uuid.uuid4().hex[:8]}"
    shutil.copytree(shapes_root / "shapes", settings.DATA_ROOT / name)
    return f"{name}/data.yaml"


BAD_FIELDS: list[tuple[str, Any]] = [
    ("epochs", 0),
    ("epochs", 100000),
    ("epochs", "many"),
    ("n_trials", 0),
    ("n_trials", -3),
    ("parallel", 0),
    ("imgsz", 65),
    ("imgsz", 16),
    ("batch", 0),
    ("batch", -2),  # -1 is AutoBatch; nothing else below 1 but a fraction of GPU memory
    ("batch", 1.5),
    ("batch", 2000),
    ("batch", True),
    ("batch", -1000000),
    ("batch", "16"),
    ("diagnostics", "maybe"),
    ("diagnostics", [True]),
    ("model", "yolov5n.pth"),
    ("seed", -1),
    ("sampler", "grid"),
    ("seed_hyp", "scratch-huge"),
    ("model", "yolov8n.yaml"),
    ("model", "../../evil.pt"),
    ("name", "../x"),
    ("unknown_field", 1),
    ("pruner", "asha"),
    ("max_retries", -1),
    ("max_retries", 11),
    ("max_failed_trials", 0),
    ("gpus_per_trial", 1.5),
    ("gpus_per_trial", -1),
    ("confirm_top_k", -1),
    ("confirm_top_k", 21),
    ("confirm_seeds", 1),
    ("confirm_epochs", 0),
    ("confirm_epochs", 5000),
    # Shorter than the study's (default 10) epochs: confirmation checks on trainings at least as long.
    ("confirm_epochs", 5),
    ("confirm_seeds_max", 21),
    ("confirm_seeds_max", -3),
    ("confirm_seeds_max", True),
    ("confirm_rungs", True),
    ("confirm_rungs", 10**30),
    ("budget_epochs", -1),
    ("budget_epochs", 10**30),
    ("budget_epochs", False),
    ("budget_epochs", 600.5),
    ("key_set", "augmentation\n"),
    ("key_set", 1),
    ("confirm_seeds_max", "5"),
    # Below the default confirm_seeds (3): racing adds seeds, it never takes any away.
    ("confirm_seeds_max", 2),
    ("key_set", "yolov8"),
    ("budget_epochs", 0),
    ("budget_epochs", "600"),
    # The least study with the default confirmation (10-epoch trials, 3 seeds of 30 epochs) plans 200.
    ("budget_epochs", 150),
    ("confirm_rungs", 0),
    ("confirm_rungs", 5),
    ("confirm_rungs", "2"),
    # 3 rungs to the default 30 confirmation epochs: a lowest rung of 3 epochs, shorter than the trials' 10.
    ("confirm_rungs", 3),
    # A name must match whole: "$" alone would let a trailing newline into Content-Disposition.
    ("name", "n\n"),
    # JSON types, not guesses: a count given as a string or a boolean is refused, not coerced.
    ("epochs", "7"),
    ("epochs", True),
    ("imgsz", "64"),
    ("n_trials", "3"),
    ("parallel", True),
    ("seed", "0"),
    ("max_retries", "1"),
    ("max_failed_trials", True),
    ("gpus_per_trial", "1"),
    ("gpus_per_trial", True),
    ("confirm_top_k", "1"),
    ("confirm_seeds", True),
    ("confirm_epochs", "30"),
    ("epochs", 7.5),
    ("diagnostics", "yes"),
    ("diagnostics", 1),
    ("dataset", "shapes/data"),
    ("probe_keys", "box"),
    ("probe_keys", ["box", "box"]),
    ("probe_keys", ["box\n"]),
    ("probe_keys", True),
    ("probe_keys", 1),
    ("probe_keys", ["box"] * 1000),
    ("confirm_probe_keys", "mosaic"),
    ("confirm_probe_keys", ["mosaic", "mosaic"]),
    ("confirm_probe_keys", True),
    ("confirm_probe_keys", ["mosaic\n"]),
    ("confirm_probe_keys", ["mosaic"] * 1000),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_bad_field_gets_422_naming_field_and_value(
    api: httpx.Client, settings: Settings, shapes: str, field: str, value: Any
) -> None:
    response = api.post("/studies", json={"dataset": shapes, field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["value"] == value
    assert field in body["detail"]
    assert repr(value) in body["detail"]
    nothing_written(settings)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("../etc/data.yaml", "outside the data root"),
        ("/etc/data.yaml", "relative to the data root"),
        ("missing/data.yaml", "does not exist"),
    ],
)
def test_bad_dataset_gets_422_naming_it(api: httpx.Client, settings: Settings, dataset: str, message: str) -> None:
    response = api.post("/studies", json={"dataset": dataset})
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [{"field": "dataset", "value": dataset, "message": body["errors"][0]["message"]}]
    assert message in body["detail"]
    nothing_written(settings)


def test_download_key_in_data_yaml_gets_422(api: httpx.Client, settings: Settings, own_shapes: str) -> None:
    data_yaml = settings.DATA_ROOT / own_shapes
    data_yaml.write_text(data_yaml.read_text() + "download: https://example.invalid/x.zip\n")
    response = api.post("/studies", json={"dataset": own_shapes})
    assert response.status_code == 422
    assert "'download' key" in response.json()["detail"]
    nothing_written(settings)


# Fields each valid alone that conflict: the error names the field that says why, with its value.
CONFLICTS = [
    ({"evolve": ["lr0"], "key_set": "augmentation"}, "key_set", "give evolve or key_set, not both"),
    ({"budget_epochs": 1000, "n_trials": 5}, "budget_epochs", "buys 64 trials but n_trials is 5"),
    ({"confirm_top_k": 0, "confirm_rungs": 2}, "confirm_rungs", "confirm_top_k is 0"),
    ({"sampler": "tpe", "probe_keys": ["box"]}, "probe_keys", "yolov5 sampler only"),
    # The augmentation set holds the loss gains at the seed's values: a probe of one would not be searched.
    ({"key_set": "augmentation", "probe_keys": ["hsv_h", "box"]}, "probe_keys", "names 'box', which the study"),
    ({"evolve": ["lr0"], "probe_keys": ["lr"]}, "probe_keys", "names 'lr', which the study does not search"),
    # The top screening trial keeps the first of confirmation's places: a key can take only the others.
    ({"confirm_top_k": 1, "confirm_probe_keys": ["mosaic"]}, "confirm_probe_keys", "at most confirm_top_k - 1 (0)"),
    ({"confirm_top_k": 0, "confirm_probe_keys": ["mosaic"]}, "confirm_probe_keys", "confirm_top_k is 0"),
    # Only a probe has a best probe.
    ({"probe_keys": ["box"], "confirm_probe_keys": ["mosaic"]}, "confirm_probe_keys", "names 'mosaic', which the"),
]


@pytest.mark.parametrize(("fields", "field", "message"), CONFLICTS, ids=[c[1] for c in CONFLICTS])
def test_conflicting_fields_get_422_naming_one(
    api: httpx.Client, settings: Settings, shapes: str, fields: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("/studies", json={"dataset": shapes, **fields})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["field"], error["value"]) == (field, fields[field])
    assert message in response.json()["detail"]
    nothing_written(settings)


def test_a_stored_request_reads_back_as_it_was_taken() -> None:
    # The service stores the request with every field (defaults included) and validates it again on
    # every load: each field's rules must accept what they accepted once.
    for fields in (
        {"evolve": ["lr0"]},
        {"key_set": "augmentation"},
        {"confirm_rungs": 2, "confirm_seeds_max": 6},
        {"budget_epochs": 1000},
        {"probe_keys": ["box", "cls"]},
        {"probe_keys": []},
        {"probe_keys": None},  # what a request stored before the field existed reads it as
        {"probe_keys": ["mosaic"], "confirm_probe_keys": ["mosaic"]},
        {"confirm_probe_keys": []},
        {"confirm_top_k": 0, "confirm_probe_keys": []},
        {"confirm_probe_keys": None},
    ):
        request = StudyRequest(dataset="shapes/data.yaml", **fields)
        assert StudyRequest.model_validate(request.model_dump(mode="json")) == request


def test_missing_dataset_field_gets_422(api: httpx.Client, settings: Settings) -> None:
    response = api.post("/studies", json={"epochs": 3})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "dataset"
    nothing_written(settings)


def test_malformed_json_gets_422(api: httpx.Client, settings: Settings) -> None:
    response = api.post("/studies", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    nothing_written(settings)


@pytest.mark.parametrize("path", ["/studies/999", "/studies/999/trials", "/studies/999/hyp.yaml"])
def test_unknown_study_gets_404(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["detail"] == "study 999 does not exist"


def test_stop_of_unknown_study_gets_404(api: httpx.Client) -> None:
    assert api.post("/studies/999/stop").status_code == 404


def test_healthz(api: httpx.Client) -> None:
    # No study has run in this server: Ray is not started (the API answers before it ever is).
    assert api.get("/healthz").json() == {"status": "ok", "database": "ok", "ray": "not started"}


@pytest.mark.parametrize(("settings_", "field", "value", "message"), REFUSALS)
def test_bad_search_settings_get_422_naming_key_and_value(
    api: httpx.Client, settings: Settings, shapes: str, settings_: dict[str, Any], field: str, value: Any, message: str
) -> None:
    response = api.post("/studies", json={"dataset": shapes, **settings_})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["field"], error["value"]) == (field, value)
    assert message in error["message"]
    nothing_written(settings)


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ({"fitness_weights": [0.1, 0.9]}, "fitness_weights", [0.1, 0.9]),
        ({"fitness_weights": [0, 0, -1, 1]}, "fitness_weights.2", -1),
        ({"fixed": {"mosaic": "lots"}}, "fixed.mosaic", "lots"),
        ({"bounds": {"lr0": "wide"}}, "bounds.lr0", "wide"),
        ({"evolve": "lr0"}, "evolve", "lr0"),
        ({"fixed": {"lr0": "0.01"}}, "fixed.lr0", "0.01"),
        ({"bounds": {"lr0": ["0.001", 0.05]}}, "bounds.lr0.0", "0.001"),
        ({"fitness_weights": [0, 0, "0.1", 0.9]}, "fitness_weights.2", "0.1"),
    ],
)
def test_malformed_search_settings_get_422(
    api: httpx.Client, settings: Settings, shapes: str, body: dict[str, Any], field: str, value: Any
) -> None:
    response = api.post("/studies", json={"dataset": shapes, **body})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["field"], error["value"]) == (field, value)
    nothing_written(settings)


def test_symlink_out_of_the_data_root_gets_422(api: httpx.Client, settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "images").mkdir(parents=True)
    (outside / "data.yaml").write_text("train: images\nval: images\nnames: [a]\n")
    (settings.DATA_ROOT / "link").symlink_to(outside)
    response = api.post("/studies", json={"dataset": "link/data.yaml"})
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "dataset",
        "value": "link/data.yaml",
        "message": "is outside the data root",
    }
    nothing_written(settings)


@pytest.mark.parametrize(
    ("line", "message"),
    [("train: ../../../etc", "'train' path '../../../etc' leaves the data root"),
     ("val: /etc", "'val' path '/etc' leaves the data root"),
     ("train: [unclosed", "is not valid YAML")],
)  # fmt: skip
def test_bad_data_yaml_contents_get_422(
    api: httpx.Client, settings: Settings, own_shapes: str, line: str, message: str
) -> None:
    data_yaml = settings.DATA_ROOT / own_shapes
    data_yaml.write_text(data_yaml.read_text() + line + "\n")
    response = api.post("/studies", json={"dataset": own_shapes})
    assert response.status_code == 422
    assert message in response.json()["detail"]
    nothing_written(settings)


def test_study_id_beyond_a_sql_integer_gets_422(api: httpx.Client) -> None:
    response = api.get(f"/studies/{2**63}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "path.study_id"


NON_FINITE: list[tuple[str, str]] = [
    ('"seed_hyp": "lr0: .nan\\n"', "seed_hyp.lr0"),
    ('"seed_hyp": {"lr0": NaN}', "seed_hyp.lr0"),
    ('"fixed": {"lr0": "nan"}', "fixed.lr0"),
    ('"bounds": {"lr0": ["-inf", "inf"]}', "bounds.lr0.0"),
    ('"epochs": NaN', "epochs"),
    ('"fitness_weights": [NaN, 0, 0, 1]', "fitness_weights.0"),
    ('"fitness_weights": [1e308, 1e308, 1e308, 1e308]', "fitness_weights.0"),
    ('"gpus_per_trial": Infinity', "gpus_per_trial"),
    ('"batch": NaN', "batch"),
    ('"batch": -Infinity', "batch"),
    ('"batch": 1e308', "batch"),
    ('"budget_epochs": NaN', "budget_epochs"),
    ('"budget_epochs": Infinity', "budget_epochs"),
    ('"confirm_seeds_max": -Infinity', "confirm_seeds_max"),
    ('"confirm_rungs": 1e308', "confirm_rungs"),
]


@pytest.mark.parametrize(("fragment", "field"), NON_FINITE)
def test_non_finite_or_absurd_numbers_get_422_naming_the_field(
    api: httpx.Client, settings: Settings, shapes: str, fragment: str, field: str
) -> None:
    # Python's JSON reader takes NaN and Infinity; the service must refuse them, not answer 500.
    body = f'{{"dataset": "{shapes}", {fragment}}}'
    response = api.post("/studies", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    nothing_written(settings)


@pytest.mark.parametrize(
    ("content_type", "body", "field", "value"),
    [
        ("text/plain", b'{"dataset": "shapes/data.yaml"}', "content-type", "text/plain"),
        ("application/vnd.api+json", b'{"dataset": "shapes/data.yaml"}', "content-type", "application/vnd.api+json"),
        # A UTF-8 body labelled UTF-16, and a UTF-16 body with its byte-order mark: Python's JSON reader
        # takes both, but JSON over HTTP is UTF-8 (RFC 8259); one rule, said once.
        ("application/json; charset=utf-16", b'{"dataset": "shapes/data.yaml"}', "content-type",
         "application/json; charset=utf-16"),
        ("application/json", '{"dataset": "shapes/data.yaml"}'.encode("utf-16"), "body", "byte-order mark"),
        ("application/json", codecs.BOM_UTF8 + b'{"dataset": "shapes/data.yaml"}', "body", "byte-order mark"),
    ],
    ids=["text", "vnd-json", "charset-utf-16", "utf-16-bom", "utf-8-bom"],
)  # fmt: skip
def test_a_body_that_is_not_utf8_application_json_gets_422_naming_why(
    api: httpx.Client, settings: Settings, content_type: str, body: bytes, field: str, value: str
) -> None:
    response = api.post("/studies", content=body, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert (response.json()["errors"][0]["field"], response.json()["errors"][0]["value"]) == (field, value)
    nothing_written(settings)


def test_json_with_a_utf8_charset_is_read(api: httpx.Client, settings: Settings) -> None:
    # The content type passes: the answer is about the data set the body names.
    body = b'{"dataset": "missing/data.yaml"}'
    response = api.post("/studies", content=body, headers={"content-type": "Application/JSON; charset=UTF-8"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "dataset"
    nothing_written(settings)


@pytest.mark.parametrize(
    "body",
    [b"\x1c\xff\xcd\x90", b"[" * 5000 + b"]" * 5000, b'{"dataset": ' * 3000 + b"1" + b"}" * 3000],
    ids=["undecodable", "deep-list", "deep-object"],
)
def test_a_body_that_cannot_be_parsed_gets_422_naming_the_body(
    api: httpx.Client, settings: Settings, body: bytes
) -> None:
    response = api.post("/studies", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "body"
    nothing_written(settings)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/studies", "GET, POST"), ("/studies/1", "GET, DELETE"), ("/studies/1/stop", "POST"), ("/healthz", "GET")],
)
def test_a_method_not_allowed_names_every_allowed_method(api: httpx.Client, path: str, allowed: str) -> None:
    response = api.request("OPTIONS", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize("export", ["hyp.yaml", "args.yaml"])
def test_export_errors_are_json_as_documented(api: httpx.Client, export: str) -> None:
    response = api.get(f"/studies/1/{export}", params={"source": "best"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["field"] == "query.source"
    documented = api.get("/openapi.json").json()["paths"][f"/studies/{{study_id}}/{export}"]["get"]["responses"]
    assert list(documented["422"]["content"]) == ["application/json"]
    assert list(documented["200"]["content"]) == ["application/x-yaml"]


LONE_SURROGATE = [
    ('"dataset": "\\ud800"', "dataset"),
    ('"dataset": "shapes/data.yaml", "name": "\\ud800"', "name"),
    ('"dataset": "shapes/data.yaml", "model": "\\ud800"', "model"),
    ('"dataset": "shapes/data.yaml", "sampler": "\\ud800"', "sampler"),
    ('"dataset": "shapes/data.yaml", "pruner": "\\ud800"', "pruner"),
    ('"dataset": "shapes/data.yaml", "seed_hyp": "\\ud800"', "seed_hyp"),
    ('"dataset": "shapes/data.yaml", "evolve": ["\\ud800"]', "evolve"),
    ('"dataset": "shapes/data.yaml", "fixed": {"\\ud800": 1}', "fixed"),
    ('"dataset": "shapes/data.yaml", "key_set": "\\ud800"', "key_set"),
    ('"dataset": "shapes/data.yaml", "probe_keys": ["\\ud800"]', "probe_keys"),
    ('"dataset": "shapes/data.yaml", "confirm_probe_keys": ["\\ud800"]', "confirm_probe_keys"),
    # A key that is not even text: the body holds it (the value says which).
    ('"dataset": "shapes/data.yaml", "\\ud800": 1', "body"),
]


@pytest.mark.parametrize(
    ("fragment", "field"), LONE_SURROGATE, ids=[f"{i}-{f}" for i, (_, f) in enumerate(LONE_SURROGATE)]
)
def test_a_lone_surrogate_in_any_string_gets_422_naming_the_field(
    api: httpx.Client, settings: Settings, fragment: str, field: str
) -> None:
    # JSON may escape half of a UTF-16 pair (\ud800): no UTF-8 text holds it, so the 422 that echoes
    # it must show it escaped, not fail to encode it (a 500).
    response = api.post("/studies", content=f"{{{fragment}}}", headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"].startswith(field), error
    assert "\\ud800" in response.text
    nothing_written(settings)


def test_the_openapi_schema_says_what_the_server_checks(api: httpx.Client) -> None:
    # Generated clients read the schema: what it leaves out, they send and the server then refuses.
    request = api.get("/openapi.json").json()["components"]["schemas"]["StudyRequest"]["properties"]
    assert request["imgsz"]["multipleOf"] == 32
    assert re.fullmatch(request["name"]["pattern"], "shapes-1")
    assert not re.fullmatch(request["name"]["pattern"], "../x")
    assert re.search(request["dataset"]["pattern"], "shapes/data.yaml")
    assert not re.search(request["dataset"]["pattern"], "/etc/data.yaml")
    assert re.search(request["model"]["pattern"], "yolov5s6.yaml")
    assert "at least `epochs`" in request["confirm_epochs"]["description"]


@pytest.mark.parametrize("gpus", [1, 0.5])
def test_gpus_this_machine_lacks_are_refused_at_creation(
    api: httpx.Client, settings: Settings, shapes: str, gpus: float
) -> None:
    # This machine has no GPU, and its local Ray no more: a study asking for one would wait forever.
    response = api.post("/studies", json={"dataset": shapes, "gpus_per_trial": gpus})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["field"], error["value"]) == ("gpus_per_trial", gpus)
    assert "0 GPUs; 0 trains on the CPU" in error["message"]
    nothing_written(settings)
