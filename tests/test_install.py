"""A non-editable install works from any folder: the command line drives with the shipped model, the
README's Python example runs (and resumes what the command line drove: one code path), and no name but
``drivestack`` lands at the top level of site-packages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROUTE = "r05_mixed_t2001"


@pytest.mark.slow
def test_a_wheel_install_drives_from_an_empty_folder(tmp_path):
    venv = tmp_path / "venv"
    # the dependencies come from the system site-packages, pip and setuptools too (no downloads)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True, timeout=300)
    python, drivestack = venv / "bin" / "python", venv / "bin" / "drivestack"
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT)],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_WAIT_POLICY": "PASSIVE"}

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], cwd=work, env=env, capture_output=True, text=True, timeout=1200)

    located = run(python, "-c", "import drivestack, drivestack.configs, drivestack.models; print(drivestack.__file__)")
    assert located.returncode == 0 and str(venv) in located.stdout, located.stdout + located.stderr
    for name in ("tools", "sim", "perception", "planning"):
        assert run(python, "-c", f"import {name}").returncode != 0, f"'import {name}' should fail"

    cli = run(drivestack, "drive", "agent=policy", f"routes=[{ROUTE}]", "out=runs/example")
    assert cli.returncode == 0, cli.stderr[-3000:]
    summary = json.loads((work / "runs" / "example" / "summary.json").read_text())
    assert [r["name"] for r in summary["routes"]] == [ROUTE] and summary["routes"][0]["completion"] > 0

    example = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    assert f'routes=["{ROUTE}"], out="runs/example"' in example
    (work / "example.py").write_text(example)
    python_api = run(python, "example.py")
    assert python_api.returncode == 0, python_api.stderr[-3000:]
    assert ROUTE in python_api.stdout and "driving score" in python_api.stdout
    routes = json.loads((work / "runs" / "example" / "summary.json").read_text())["routes"]
    assert routes == summary["routes"]  # the same driver (identity checked by driver.json): resumed, not driven again
