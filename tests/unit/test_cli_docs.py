"""docs/cli.md is the command's own help (``make docs`` writes it)."""

from __future__ import annotations

from hanshu_cli.docs import render

from tests.support import ROOT


def test_docs_cli_is_generated_from_the_current_help() -> None:
    target = ROOT / "docs" / "cli.md"
    assert target.exists(), f"{target} is missing: run `make docs`"
    assert target.read_text() == render(), f"{target} is stale: run `make docs`"
