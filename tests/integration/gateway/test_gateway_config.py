"""A bad setting stops ``python -m hanshu_gateway`` with one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HANSHU_QUEUE_LIMIT", "lots"),
        ("HANSHU_QUEUE_LIMIT", "0"),
        ("HANSHU_COLD_START_TIMEOUT", "-1"),
        ("HANSHU_READ_TIMEOUT", "nan"),
        ("HANSHU_MAX_BODY_BYTES", "1.5"),
        ("HANSHU_GATEWAY_PORT", "99999"),
        ("HANSHU_AUTOSCALER_URL", "autoscaler:8090"),
        ("HANSHU_WATCH_IDLE_SECONDS", "soon"),
        ("HANSHU_WATCHABLE_KINDS", "v1/ConfigMap"),
        ("HANSHU_DEFAULT_RESOURCES", "{limits: 1Gi}"),
        ("HANSHU_DEFAULT_RESOURCES", "[]"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_it(tmp_path: Path, variable, value):
    line = failed_start_line(tmp_path, {variable: value})
    assert variable in line
    assert repr(value) in line  # what was set, next to what is accepted


def test_missing_credentials_are_one_line_saying_what_to_set(tmp_path: Path):
    assert "KUBECONFIG" in failed_start_line(tmp_path, {})


def failed_start_line(tmp_path: Path, settings: dict[str, str]) -> str:
    """The one stderr line of a gateway that refused to start (with no kubeconfig)."""
    env = {name: v for name, v in os.environ.items() if not name.startswith("HANSHU_")}
    env.update({**settings, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")})
    # A gateway that accepted the value would go on to serve: the timeout catches that.
    done = subprocess.run(
        [sys.executable, "-m", "hanshu_gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]
