"""docs/cli.md, generated from the command's own help so it cannot drift:
``python -m hanshu_cli.docs`` (``make docs``) writes it; a test compares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from .app import app

HEADER = """\
# The `hanshu` command

Generated from `hanshu --help` by `make docs` (`python -m hanshu_cli.docs`); a test keeps
it current. Installed with the project (`pip install 'hanshu[cli]'`, or `make install`).

Cluster access goes through the official Kubernetes client, so every kubeconfig works
(contexts, exec plugins of EKS / GKE / AKS, in-cluster service accounts). Every failure
is one line on stderr and a non-zero exit; `--debug` adds the traceback.
"""


def _help(command: Any, name: str, parent: Any = None) -> str:
    context = typer.Context(command, info_name=name, parent=parent, **command.context_settings)
    # Plain text, fixed width: the same page on every machine.
    formatter = context.make_formatter()
    formatter.width = 96
    command.format_help(context, formatter)
    return str(formatter.getvalue()).rstrip()


def render() -> str:
    root = typer.main.get_command(app)
    root_context = typer.Context(root, info_name="hanshu")
    sections = [HEADER, "```\n" + _help(root, "hanshu") + "\n```\n"]
    for name in root.list_commands(root_context):  # type: ignore[attr-defined]
        command = root.get_command(root_context, name)  # type: ignore[attr-defined]
        sections.append(
            f"## hanshu {name}\n\n```\n" + _help(command, name, root_context) + "\n```\n"
        )
    return "\n".join(sections)


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/cli.md")
    target.write_text(render())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
