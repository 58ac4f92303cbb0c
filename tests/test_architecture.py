"""The declared layers (``[tool.importlinter]`` in pyproject.toml) hold, and do catch breaches."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), str(config), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_repository_keeps_every_contract() -> None:
    result = lint_imports(REPO, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def stub_project(tmp_path: Path) -> Path:
    """Empty packages with the repository's layout, and the repository's contracts."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]
    modules: set[str] = set(contracts["root_packages"])
    for contract in contracts["contracts"]:
        for layer in contract.get("layers", []):
            for part in layer.replace(":", "|").split("|"):
                modules.add(part.strip())
        modules.update(contract.get("source_modules", []))
    for module in modules:
        folder = tmp_path.joinpath(*module.split("."))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").touch()
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("identity", "import dagster_project.lib", "Layers"),
        ("api", "import dagster_project.lib", "Layers"),
        ("dagster_project.lib", "import api", "Layers"),
        ("snapshots", "import identity", "Layers"),
        ("api", "import dagster", "The API runtime never imports the pipeline"),
        ("dagster_project.lib", "import dagster", "The platform library never imports"),
        ("identity", "import fastapi", "identity is a plain library"),
        ("snapshots", "import duckdb", "The snapshot format is stdlib and pydantic only"),
        ("decisions", "import api", "Layers"),
        ("snapshots", "import decisions", "Layers"),
        ("decisions", "import strawberry", "decisions is a plain library"),
        ("decisions", "import events", "Layers"),
        ("events", "import api", "Layers"),
        ("events", "import fastapi", "events is a plain library"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    stub_project: Path, module: str, statement: str, contract: str
) -> None:
    clean = lint_imports(stub_project, stub_project / "pyproject.toml")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    offender = stub_project.joinpath(*module.split(".")) / "offender.py"
    offender.write_text(statement + "\n", encoding="utf-8")
    broken = lint_imports(stub_project, stub_project / "pyproject.toml")
    assert broken.returncode == 1, broken.stdout
    assert contract in broken.stdout
    assert f"{module}.offender" in broken.stdout
