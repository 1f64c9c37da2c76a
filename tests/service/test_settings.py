from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings


def test_embedded_defaults_live_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.HOME == tmp_path / ".hypevolve"
    assert settings.DATABASE_URL == f"sqlite:///{tmp_path / '.hypevolve' / 'hypevolve.db'}"
    assert settings.ARTIFACTS_DIR == tmp_path / ".hypevolve" / "runs"
    assert settings.DATA_ROOT == tmp_path / "data"
    assert settings.RAY_ADDRESS is None


def test_environment_overrides_with_the_hypevolve_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYPEVOLVE_DATABASE_URL", "postgresql+psycopg://u@db/hv")
    monkeypatch.setenv("HYPEVOLVE_RAY_ADDRESS", "ray-head:6379")
    monkeypatch.setenv("HYPEVOLVE_DATA_ROOT", str(tmp_path / "sets"))
    settings = Settings()
    assert settings.DATABASE_URL == "postgresql+psycopg://u@db/hv"
    assert settings.RAY_ADDRESS == "ray-head:6379"
    assert settings.DATA_ROOT == tmp_path / "sets"


def test_blank_ray_address_means_a_local_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPEVOLVE_RAY_ADDRESS", "")
    assert Settings().RAY_ADDRESS is None


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPEVOLVE_CPUS_PER_TRIAL", "0")
    with pytest.raises(ValueError, match="CPUS_PER_TRIAL"):
        Settings()


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "1e9", "soon"])
def test_db_patience_must_be_a_sane_number_of_seconds(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HYPEVOLVE_DB_PATIENCE_S", value)
    with pytest.raises(ValueError, match="DB_PATIENCE_S"):
        Settings()
