"""Docker cannot run here: validate the images' and compose file's structure against the repo instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from bot.cli import _register_all, app

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services_and_commands_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"bot", "worker", "api", "redis", "postgres", "migrate"} <= set(services)
    _register_all()
    runner = CliRunner()
    for name in ("bot", "worker", "api", "migrate"):
        command = services[name]["command"]
        assert command[0] == "chatmod"
        path = command[1:3] if command[1] == "db" else command[1:2]  # the (sub)command, not its options
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, f"{name}: `chatmod {' '.join(path)}` is not a command\n{result.output}"
        result = runner.invoke(app, [*command[1:], "--help"])  # and its options parse
        assert result.exit_code == 0, f"{name}: `{' '.join(command)}` does not parse\n{result.output}"
    # every chatmod service waits for healthy databases and the migration
    for name in ("bot", "worker", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "migrate" not in services["migrate"]["depends_on"]


def test_dockerfile_copies_existing_paths() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, flags=re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing path {path}"
    assert 'pip install --index-url ${TORCH_INDEX} "torch==${TORCH_VERSION}"' in text
