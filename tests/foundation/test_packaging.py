"""environment.yml installs what pyproject.toml declares."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1
    pip = pip_sections[0]
    assert any(line.startswith("-e .[") or line.startswith("-e '.[") for line in pip), pip
    extras = pip[0].split("[", 1)[1].rstrip("]'").split(",")
    assert set(extras) <= set(project["optional-dependencies"])
    python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert python and python[0].replace("python", "").lstrip("=><") in project["requires-python"]
    # nothing installed twice with a different pin: conda lists no package pyproject manages
    conda_names = {d.split("=")[0].split(">")[0] for d in env["dependencies"] if isinstance(d, str)}
    assert conda_names <= {"python", "pip"}
