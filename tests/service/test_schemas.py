"""The request schema's own rules, without a server: what JSON types it takes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.schemas import StudyRequest


def test_a_whole_number_written_with_a_fraction_is_still_a_count() -> None:
    # JSON has one number type: 7.0 is the integer 7 (JSON Schema says so too); "7" and true are not.
    request = StudyRequest.model_validate({"dataset": "shapes/data.yaml", "epochs": 7.0, "gpus_per_trial": 1})
    assert request.epochs == 7
    assert isinstance(request.epochs, int)
    assert request.gpus_per_trial == 1.0


@pytest.mark.parametrize("epochs", ["7", True, 7.5])
def test_a_count_that_is_not_a_json_integer_is_refused(epochs: object) -> None:
    with pytest.raises(ValidationError, match="epochs"):
        StudyRequest.model_validate({"dataset": "shapes/data.yaml", "epochs": epochs})
