"""The harness: pyproject, environment.yml, the pins and CI agree."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_and_pyproject_list_the_same_packages():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    py = {_name(r) for r in proj["dependencies"]}
    for extra in proj["optional-dependencies"].values():
        py |= {_name(r) for r in extra}
    conda = set()
    deps = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    for line in deps.splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.-]+)", line) or re.match(r"^      - ([A-Za-z][A-Za-z0-9_.-]*)", line)  # conda, or pip-only
        if m and m.group(1) not in ("python", "pip"):
            conda.add(CONDA_NAMES.get(_name(m.group(1)), _name(m.group(1))))
    assert py == conda


def test_constraints_pin_every_package_and_the_cpu_torch():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    assert pins["torch"] == "2.13.0"
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in proj["dependencies"]} | {_name(r) for e in proj["optional-dependencies"].values() for r in e}
    assert wanted <= set(pins), wanted - set(pins)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "GPTLAB_DATA_MIRROR" in (ROOT / ".ci" / "run").read_text()
