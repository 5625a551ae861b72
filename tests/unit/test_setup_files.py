"""What a new user meets first: ``make install`` / ``make dev`` say what they are doing, and
the build prints no setuptools deprecation for the project's own metadata."""

from __future__ import annotations

import subprocess
import tomllib

from tests.support import ROOT


def test_the_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # A TOML table here makes setuptools warn "`project.license` as a TOML table is deprecated".
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]  # the first to read it


def test_make_install_says_what_it_does_before_the_quiet_pip_and_where_hanshu_is() -> None:
    plan = subprocess.run(
        ["make", "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    pip = next(i for i, line in enumerate(plan) if "pip install --quiet -e" in line)
    said = [line for line in plan[:pip] if line.startswith("echo ")]
    assert said, "make install runs pip quietly without a word first"
    assert "installing Hanshu into .venv (about 2 minutes)..." in said[0]
    assert any(".venv/bin/hanshu" in line and "PATH" in line for line in plan[pip:])
