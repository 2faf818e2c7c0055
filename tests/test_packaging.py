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
        m = re.match(r"^  - ([A-Za-z0-9_.-]+)", line) or re.match(
            r"^      - ([A-Za-z][A-Za-z0-9_.-]*)", line
        )  # conda, or pip-only
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
    wanted = {_name(r) for r in proj["dependencies"]} | {
        _name(r) for e in proj["optional-dependencies"].values() for r in e
    }
    assert wanted <= set(pins), wanted - set(pins)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "GPTLAB_DATA_MIRROR" in (ROOT / ".ci" / "run").read_text()


def test_floors_are_what_the_code_needs():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert proj["requires-python"].split("#")[0].strip() == ">=3.11"  # tomllib
    torch_req = next(r for r in proj["dependencies"] if _name(r) == "torch")
    assert torch_req.replace(" ", "") == "torch>=2.9"  # torch.optim.Muon
    import torch

    assert hasattr(torch.optim, "Muon")
    for env in ("environment.yml", "binder/environment.yml"):
        assert "pytorch>=2.9" in (ROOT / env).read_text()


def test_every_marker_in_the_conftest_table_is_registered():
    import conftest

    registered = {
        m.split(":")[0]
        for m in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    }
    assert registered == {"slow", "browser", "docs", "subprocess", "numerics"}
    used = {name for names in conftest.MARKERS.values() for name in names}
    assert used == registered, used ^ registered


def test_ci_reruns_the_numerics_tests_with_portable_kernels():
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test\n") < ci.index("make test-numerics")
    make = (ROOT / "Makefile").read_text()
    assert re.search(
        r"^test-numerics:.*\n\tATEN_CPU_CAPABILITY=default \$\(PY\) -m pytest tests -m numerics", make, re.M
    )
