"""chatmod settings: one pydantic-settings model, loaded from TOML with environment overrides.

Precedence (highest first): constructor arguments, environment (``CHATMOD_<SECTION>__<KEY>``, e.g.
``CHATMOD_DISCORD__TOKEN``), the TOML file, defaults. Secrets (tokens, signing secrets, API keys) belong
in the environment, never in the TOML file. Each component receives only its slice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class DatabaseSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///chatmod.db"
    #: Message text is kept this many days for review and appeals, then erased (hash kept).
    retention_days: int = Field(30, ge=1, le=3650)
    echo: bool = False
    #: Keys the pseudonyms that replace a member's ids on erasure (env CHATMOD_DATABASE__ERASURE_SALT);
    #: keep it stable so repeated erasures agree. Empty = random per process.
    erasure_salt: SecretStr = SecretStr("")
    #: How often the bot erases message texts older than the retention window.
    purge_interval_s: float = Field(3600.0, gt=0)


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:6379/0"
    stream: str = "chatmod:score:requests"
    group: str = "chatmod-workers"
    #: Maximum unprocessed requests before clients see backpressure (ScoringOverloaded).
    max_pending: int = Field(10_000, ge=1)
    socket_timeout_s: float = Field(5.0, gt=0)


class ModelSettings(BaseModel):
    #: Artifact directory; empty means the shipped default model (models/default).
    path: str = ""
    #: "torch" (the real model) or "fake" (deterministic lexicon scorer, for tests only).
    backend: Literal["torch", "fake"] = "torch"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: CPU int8 dynamic quantisation (faster, tiny AUC cost; see BENCHMARKS.md).
    int8: bool = False
    threads: int = Field(0, ge=0)  # 0 = torch default
    #: CPU: model calls of at most this many padded tokens run on one thread, longer ones on `threads`
    #: (0 = every call on `threads`).
    serial_tokens: int = Field(0, ge=0)
    #: CPU inference engine: "torch" (eager) or "onnx" (ONNX Runtime on the same weights, faster;
    #: needs the `onnx` extra). With `int8` on, "onnx" quantises in ONNX Runtime — the fastest CPU
    #: path (BENCHMARKS.md). CUDA always uses torch.
    engine: Literal["torch", "onnx"] = "torch"


class WorkerSettings(BaseModel):
    max_batch: int = Field(64, ge=1)
    #: Longest a request waits for companions while the model is idle. "auto" = by device: 0 on CPU
    #: (a model call takes 10+ ms there, and arrivals batch up behind it anyway; waiting only added
    #: latency — BENCHMARKS.md, runs M and N), 2 ms on CUDA (calls of a few ms, batch fill matters).
    max_wait_ms: Annotated[float, Field(ge=0)] | Literal["auto"] = "auto"
    token_budget: int = Field(8192, ge=16)
    score_timeout_s: float = Field(5.0, gt=0)
    drain_timeout_s: float = Field(10.0, ge=0)
    queue_size: int = Field(2048, ge=1)
    #: "local" (in-process batcher) or "redis" (separate `chatmod worker` processes).
    transport: Literal["local", "redis"] = "local"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    #: Optional API key for /v1 and /predict (env CHATMOD_API__API_KEY); empty = no auth.
    api_key: SecretStr = SecretStr("")
    #: Dashboard admin token (env CHATMOD_API__ADMIN_TOKEN); empty = dashboard admin actions disabled.
    admin_token: SecretStr = SecretStr("")
    max_text_chars: int = Field(4000, ge=1)
    max_batch_items: int = Field(256, ge=1)
    cache_size: int = Field(10_000, ge=0)


class DemoSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///chatmod-demo.db"


class DiscordSettings(BaseModel):
    enabled: bool = False
    token: SecretStr = SecretStr("")  # env CHATMOD_DISCORD__TOKEN
    #: Guild ids to sync slash commands to on startup (fast); empty = global sync on demand.
    guild_ids: list[int] = Field(default_factory=list)
    max_concurrent_events: int = Field(64, ge=1)
    notice_delete_after_s: float = Field(30.0, ge=0)
    backfill_limit: int = Field(200, ge=0)


class SlackSettings(BaseModel):
    enabled: bool = False
    bot_token: SecretStr = SecretStr("")  # env CHATMOD_SLACK__BOT_TOKEN (xoxb-)
    signing_secret: SecretStr = SecretStr("")  # env CHATMOD_SLACK__SIGNING_SECRET
    #: Optional admin user token (xoxp-) that can delete members' messages; without it actions escalate.
    admin_user_token: SecretStr = SecretStr("")
    app_token: SecretStr = SecretStr("")  # env CHATMOD_SLACK__APP_TOKEN (xapp-), Socket Mode only
    socket_mode: bool = False
    moderator_user_ids: list[str] = Field(default_factory=list)
    moderator_usergroup: str = ""
    admin_user_ids: list[str] = Field(default_factory=list)


class TrainingSettings(BaseModel):
    data_dir: str = "../shared/data"
    output_dir: str = "runs"
    #: Cron expression (APScheduler) for scheduled retraining from moderator verdicts; empty = off.
    retrain_cron: str = "0 4 * * 0"
    min_new_verdicts: int = Field(50, ge=1)


class LoggingSettings(BaseModel):
    level: str = "INFO"
    json_logs: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHATMOD_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file="chatmod.toml",
    )

    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    model: ModelSettings = ModelSettings()
    worker: WorkerSettings = WorkerSettings()
    api: ApiSettings = ApiSettings()
    demo: DemoSettings = DemoSettings()
    discord: DiscordSettings = DiscordSettings()
    slack: SlackSettings = SlackSettings()
    training: TrainingSettings = TrainingSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


#: Settings that may only come from the environment: a TOML file that sets them is refused.
SECRET_KEYS = (
    ("database", "erasure_salt"),
    ("api", "api_key"),
    ("api", "admin_token"),
    ("discord", "token"),
    ("slack", "bot_token"),
    ("slack", "signing_secret"),
    ("slack", "admin_user_token"),
    ("slack", "app_token"),
)


class SecretInConfigFile(ValueError):
    """A secret was written in the TOML file; it must come from the environment."""


def check_no_secrets(path: Path) -> None:
    import tomllib

    with path.open("rb") as fh:
        data = tomllib.load(fh)
    for section, key in SECRET_KEYS:
        if data.get(section, {}).get(key):
            env = f"CHATMOD_{section.upper()}__{key.upper()}"
            raise SecretInConfigFile(
                f"{path}: {section}.{key} is a secret: set {env} in the environment instead"
            )


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from ``path`` (default ``chatmod.toml`` in the working directory, if present).

    Secrets in the file are refused (``SecretInConfigFile``): they come only from the environment.
    """
    if path is None:
        default = Path("chatmod.toml")
        if default.is_file():
            check_no_secrets(default)
        return Settings()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    check_no_secrets(path)

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=str(path))

    return _FromFile()
