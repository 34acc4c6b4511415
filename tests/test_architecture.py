"""Layering rules from CONVENTIONS.md, enforced: bot → moderation ← training; torch only in the backend."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_ALLOWED = {ROOT / "moderation" / "scoring" / "backend.py"}
PLATFORM_LIBS = {"discord", "slack_bolt", "slack_sdk", "fastapi", "starlette"}
HEAVY_LIBS = {"torch", "transformers"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


CORE_FILES = sorted((ROOT / "moderation").rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_platforms_bot_or_training(path: Path) -> None:
    roots = imported_roots(path)
    assert not roots & PLATFORM_LIBS, f"{path} imports a platform library"
    assert not roots & {"bot", "training"}, f"{path} imports an outer layer"
    if path not in TORCH_ALLOWED:
        assert not roots & HEAVY_LIBS, f"{path} imports torch/transformers outside the scorer backend"


@pytest.mark.parametrize("path", sorted((ROOT / "training").rglob("*.py")), ids=lambda p: p.name)
def test_training_never_imports_the_bot(path: Path) -> None:
    assert "bot" not in imported_roots(path)


def test_import_linter_contracts() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pure_core_is_mypy_strict_clean() -> None:
    modules = [
        "moderation/domain.py",
        "moderation/policy.py",
        "moderation/filters.py",
        "moderation/errors.py",
        "moderation/labels.py",
        "moderation/ports.py",
        "moderation/service.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
