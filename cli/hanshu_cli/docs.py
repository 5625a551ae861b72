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

`make install` puts the command in `.venv/bin`: `export PATH="$PWD/.venv/bin:$PATH"` (or
type `.venv/bin/hanshu`).

How `hanshu invoke NAME` finds the Function:

- A running `hanshu dev` that serves NAME, from the state file it writes while it runs
  (`$XDG_STATE_HOME/hanshu/dev.json`, default `~/.local/state/hanshu/dev.json`;
  `$HANSHU_DEV_STATE` names another) and removes when it stops. No `--gateway` and no
  kubeconfig needed; `--kubeconfig` or `--context` skip it for the cluster. A file left by a
  dev mode that was killed is ignored, with one line saying so.
- Else the cluster: the URL in the status of the Function's HTTP Trigger.
- `--gateway URL` calls the Function's route (from dev mode's state, else the cluster's
  Trigger objects) through that gateway.

`--path` and `--query` extend the route, never replace it: for a Trigger on `/from-lambda`,
`--path /hello` calls `/from-lambda/hello`, `--path '?name=Ada'` (or `--query name=Ada`)
calls `/from-lambda?name=Ada`. A route on a host is called with that `Host`; a route that
takes only some methods is called with the first of them when `--method` is not given. A
Function with no HTTP Trigger is called in dev mode through the gateway's internal path
(`--data` is the event, as a schedule's fire; `--async` stores it); on a cluster that path
is not reachable, and invoke says to add an HTTP Trigger.

`hanshu dev` loads only `hanshu.io` Functions and Triggers (and the Secrets they name) from
the folders it is given: other YAML there (a SAM `template.yaml` with `!Ref`, manifests of
other kinds, Helm templates) is skipped with one line naming the file. Image Functions run
from their manifest's folder with this Python's packages.
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
        # A group's own commands (hanshu alias set) get a section each.
        if hasattr(command, "list_commands"):
            group_context = typer.Context(command, info_name=name, parent=root_context)
            for sub in command.list_commands(group_context):
                subcommand = command.get_command(group_context, sub)
                sections.append(
                    f"## hanshu {name} {sub}\n\n```\n"
                    + _help(subcommand, sub, group_context)
                    + "\n```\n"
                )
    return "\n".join(sections)


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/cli.md")
    target.write_text(render())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
