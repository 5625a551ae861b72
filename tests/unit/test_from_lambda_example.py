"""examples/from-lambda applies as it is: its inline code is lambda_function.py, byte for
byte (the integration tests run the manifests; test_crds admits them)."""

from __future__ import annotations

import yaml

from tests.crd_schema import ROOT

EXAMPLE = ROOT / "examples" / "from-lambda"


def test_inline_code_is_the_lambda_file_unchanged():
    function = next(
        d
        for d in yaml.safe_load_all((EXAMPLE / "function.yaml").read_text())
        if d and d["kind"] == "Function"
    )
    assert function["spec"]["handler"] == "lambda_function.lambda_handler"
    assert function["spec"]["code"]["inline"] == {
        "lambda_function.py": (EXAMPLE / "lambda_function.py").read_text()
    }
