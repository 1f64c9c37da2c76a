"""All configuration in one typed class, read from ``HYPEVOLVE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def check_gpu_amount(value: float) -> float:
    """Ray takes a fraction of one GPU or whole GPUs, nothing in between (1.5 is refused)."""
    if value > 1 and value != int(value):
        raise ValueError("must be a fraction of one GPU (0 to 1) or a whole number of GPUs")
    return value


class Settings(BaseSettings):
    """Embedded defaults run everything on one machine: SQLite under ./.hypevolve, a local Ray."""

    model_config = SettingsConfigDict(env_prefix="HYPEVOLVE_", extra="ignore")

    HOME: Path = Field(Path(".hypevolve"), description="Where embedded defaults keep their files.")
    DATABASE_URL: str = Field("", description="SQLAlchemy URL; default sqlite:///<HOME>/hypevolve.db.")
    DATA_ROOT: Path = Field(Path("data"), description="Data sets are read from inside this folder only.")
    ARTIFACTS_DIR: Path = Field(Path(""), description="Trial outputs; default <HOME>/runs.")
    WEIGHTS_DIR: Path = Field(
        Path(""),
        description="Pretrained weights (.pt) a study may fine-tune from, put there by the operator; default "
        "<HOME>/weights. On a cluster every node needs them at the same path.",
    )
    RAY_ADDRESS: str | None = Field(None, description="Join this Ray cluster; unset starts a local Ray.")
    RAY_NUM_CPUS: int | None = Field(None, ge=1, description="CPUs of the local Ray (default: all).")
    CPUS_PER_TRIAL: int = Field(1, ge=1, description="CPUs Ray reserves per trial; the rest of one go to data loading.")
    URL: str = Field("http://127.0.0.1:8000", description="Where `hypevolve study` commands find the service.")
    API_KEY: SecretStr | None = Field(
        None, description="When set, every route but /healthz needs it (Authorization: Bearer, or X-API-Key)."
    )
    HEARTBEAT_INTERVAL_S: int = Field(10, ge=1, description="How often a running trial records a heartbeat.")
    HEARTBEAT_GRACE_S: int = Field(
        120, ge=2, description="A running trial with no heartbeat for this long is failed as lost, and retried."
    )
    DB_PATIENCE_S: float = Field(
        300,
        gt=0,
        le=86400,
        description="How long a running study waits for an unreachable database (a restart) before it fails.",
    )
    GPUS_PER_TRIAL: float | None = Field(
        None,
        ge=0,
        description="GPUs per trial (0.5 packs two on one GPU, 0 forces CPU); default 1 if the cluster has GPUs.",
    )

    @field_validator("GPUS_PER_TRIAL", mode="after")
    @classmethod
    def _ray_gpu_amount(cls, value: float | None) -> float | None:
        return None if value is None else check_gpu_amount(value)

    @field_validator("HOME", "DATA_ROOT", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("RAY_ADDRESS", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.DATABASE_URL:
            self.DATABASE_URL = f"sqlite:///{self.HOME / 'hypevolve.db'}"
        if Path("") == self.ARTIFACTS_DIR:
            self.ARTIFACTS_DIR = self.HOME / "runs"
        self.ARTIFACTS_DIR = self.ARTIFACTS_DIR.expanduser().resolve()
        if Path("") == self.WEIGHTS_DIR:
            self.WEIGHTS_DIR = self.HOME / "weights"
        self.WEIGHTS_DIR = self.WEIGHTS_DIR.expanduser().resolve()
        return self

    @property
    def dataset_reports_dir(self) -> Path:
        """Where data set reports are cached: <HOME>/dataset-reports."""
        return self.HOME / "dataset-reports"

    def prepare_dirs(self) -> None:
        """Create the folders the embedded defaults write to."""
        self.HOME.mkdir(parents=True, exist_ok=True)
        self.ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self.WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        self.DATA_ROOT.mkdir(parents=True, exist_ok=True)
