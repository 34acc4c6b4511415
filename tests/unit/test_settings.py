from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from bot.settings import SecretInConfigFile, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_example_config_lists_every_key_with_its_default() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    for section, field in Settings.model_fields.items():
        assert section in example, f"[{section}] missing from config.example.toml"
        model: BaseModel = field.default
        for key in type(model).model_fields:
            assert key in example[section], f"{section}.{key} missing from config.example.toml"
            value = getattr(model, key)
            value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            assert example[section][key] == value, f"{section}.{key}: example differs from the default"
        assert set(example[section]) <= set(type(model).model_fields), f"unknown keys in [{section}]"


def test_every_example_key_has_a_comment() -> None:
    for line in EXAMPLE.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line.split("=", 1)[1], f"no comment on: {line}"


def test_toml_file_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "chatmod.toml"
    cfg.write_text('[database]\nurl = "sqlite+aiosqlite:///x.db"\n[worker]\nmax_batch = 8\n')
    monkeypatch.setenv("CHATMOD_WORKER__MAX_BATCH", "16")
    monkeypatch.setenv("CHATMOD_DISCORD__TOKEN", "secret-token")
    settings = load_settings(cfg)
    assert settings.database.url == "sqlite+aiosqlite:///x.db"
    assert settings.worker.max_batch == 16  # env beats file
    assert settings.discord.token.get_secret_value() == "secret-token"
    assert "secret-token" not in repr(settings)


def test_invalid_values_are_typed_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[worker]\nmax_batch = 0\n")
    with pytest.raises(ValidationError, match="max_batch"):
        load_settings(cfg)
    cfg.write_text("[nonsense]\nx = 1\n")
    with pytest.raises(ValidationError, match="nonsense"):
        load_settings(cfg)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_settings(tmp_path / "absent.toml")


def test_secrets_in_the_config_file_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "chatmod.toml"
    cfg.write_text('[discord]\nenabled = true\ntoken = "abc"\n')
    with pytest.raises(SecretInConfigFile, match="CHATMOD_DISCORD__TOKEN"):
        load_settings(cfg)


def test_batch_wait_defaults_by_device_unless_configured() -> None:
    """Unset ``max_wait_ms``: no wait on CPU (a model call takes 10+ ms; arrivals batch behind it),
    2 ms on CUDA; a configured value is kept on either."""
    from types import SimpleNamespace

    from bot.compose import batch_policy
    from bot.settings import WorkerSettings

    cpu, cuda = (
        SimpleNamespace(device=SimpleNamespace(type="cpu")),
        SimpleNamespace(device=SimpleNamespace(type="cuda")),
    )
    unset = WorkerSettings()
    assert unset.max_wait_ms == "auto"
    assert batch_policy(unset, cpu).max_wait == 0.0
    assert batch_policy(unset, cuda).max_wait == 0.002
    assert batch_policy(unset, object()).max_wait == 0.0  # a scorer without a device (fake): CPU
    assert batch_policy(WorkerSettings(max_wait_ms=5.0), cpu).max_wait == 0.005
    assert batch_policy(WorkerSettings(max_wait_ms=0.0), cuda).max_wait == 0.0
    with pytest.raises(ValidationError):
        WorkerSettings(max_wait_ms=-1.0)
    with pytest.raises(ValidationError):
        WorkerSettings(max_wait_ms="soon")  # type: ignore[arg-type]
