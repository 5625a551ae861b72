"""What hanshu dev says, worked out from data: the local fix of a start-up fault, the
route table, which changes are a reload's, and what a caller is told of a fault."""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import watchfiles
from hanshu_api.conditions import ReplicaFault
from hanshu_api.models import parse_trigger_spec
from hanshu_cli.dev_faults import local_fix, requirements_note
from hanshu_cli.dev_report import route_table
from hanshu_cli.devmode import port_taken, resolved
from hanshu_gateway.catalog import KnownTrigger
from hanshu_gateway.pool import ReplicasFailing

MISSING = (
    "the runtime exited with code 1: Runtime.ImportModuleError: unable to import module "
    "'index': it imports 'PIL.Image', which is not installed. Fix: add 'PIL.Image' to the "
    "function image (see docs/runtime.md, 'Dependencies')"
)


def test_a_missing_package_is_fixed_with_pip_into_dev_modes_python(tmp_path: Path) -> None:
    fixed = local_fix(MISSING, tmp_path, "/venv/bin/python")
    assert fixed.startswith("the runtime exited with code 1: Runtime.ImportModuleError: ")
    assert "/venv/bin/python -m pip install PIL" in fixed
    assert "function image" not in fixed
    assert "requirements.txt" not in fixed  # the folder has none
    (tmp_path / "requirements.txt").write_text("pillow\n")
    fixed = local_fix(MISSING, tmp_path, "/venv/bin/python")
    assert f"dev mode does not install {tmp_path / 'requirements.txt'}" in fixed
    assert f"-m pip install -r {tmp_path / 'requirements.txt'}" in fixed


def test_other_faults_keep_the_runtimes_fix_and_say_how_to_retry(tmp_path: Path) -> None:
    line = "Runtime.UserCodeSyntaxError: syntax error. Fix: correct the syntax at index.py:3"
    fixed = local_fix(line, tmp_path, "python")
    assert fixed.startswith(line)
    assert "when a file of the Function changes" in fixed


def test_a_requirements_file_is_noted_once_it_exists(tmp_path: Path) -> None:
    assert requirements_note("api", tmp_path, "/venv/bin/python") is None
    (tmp_path / "requirements.txt").write_text("requests\n")
    note = requirements_note("api", tmp_path, "/venv/bin/python")
    assert note is not None
    assert note.startswith(f"Function api: dev mode does not install {tmp_path}/requirements.txt")


def trigger(name: str, spec: dict[str, object]) -> KnownTrigger:
    return KnownTrigger("default", name, None, parse_trigger_spec(spec, "default"))


def test_the_route_table_lists_routes_schedules_buckets_and_streams() -> None:
    triggers = [
        trigger("web", {"functionRef": {"name": "api"}, "http": {"path": "/api"}}),
        trigger(
            "shadow", {"functionRef": {"name": "other"}, "http": {"path": "/api"}}
        ),  # refused: the route is web's
        trigger(
            "admin",
            {
                "functionRef": {"name": "api"},
                "http": {"path": "/admin", "host": "admin.local", "methods": ["GET", "POST"]},
            },
        ),
        trigger(
            "nightly",
            {"functionRef": {"name": "report"}, "schedule": {"cron": "30 2 * * *"}},
        ),
        trigger(
            "uploads",
            {"functionRef": {"name": "thumbs"}, "objectStorage": {"bucket": "photos"}},
        ),
    ]
    now = datetime.datetime(2026, 12, 6, 21, 0, tzinfo=datetime.UTC)
    lines = route_table(
        triggers,
        {("default", "shadow")},
        public_url="http://127.0.0.1:8080",
        internal_url="http://127.0.0.1:9000",
        async_on=True,
        now=now,
        s3_url="http://127.0.0.1:9001",
    )
    assert lines[0] == "serving on http://127.0.0.1:8080"
    assert "  any method  any host  /api  -> api" in lines
    assert "  GET,POST  admin.local  /admin  -> api" in lines
    assert not any("other" in line for line in lines)
    assert "  nightly  '30 2 * * *' (UTC)  -> report, next fire 2026-12-07 02:30 UTC" in lines
    fire = lines[lines.index("schedules (fire one now with the curl under it):") + 2]
    assert fire.startswith(
        "    curl -X POST http://127.0.0.1:9000/_hanshu/enqueue/default/report -d '{"
    )
    assert '"triggerName":"nightly"' in fire
    assert lines[lines.index("buckets (S3 at http://127.0.0.1:9001):") + 1] == "  photos  -> thumbs"
    assert lines[-1].startswith("internal port: http://127.0.0.1:9000")


def test_schedules_are_not_listed_as_firing_without_nats() -> None:
    nightly = trigger("n", {"functionRef": {"name": "r"}, "schedule": {"cron": "* * * * *"}})
    lines = route_table(
        [nightly],
        set(),
        public_url="u",
        internal_url="i",
        async_on=False,
        now=datetime.datetime.now(datetime.UTC),
    )
    assert not any("schedules" in line for line in lines)


def test_a_file_made_and_removed_in_one_batch_is_no_change(tmp_path: Path) -> None:
    handler, temporary = tmp_path / "index.py", tmp_path / ".index.py.swp"
    changes = {
        (watchfiles.Change.added, str(temporary)),
        (watchfiles.Change.deleted, str(temporary)),
        (watchfiles.Change.modified, str(handler)),
    }
    assert resolved(changes) == {handler.resolve()}


def test_a_port_is_taken_only_while_something_listens() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert port_taken("127.0.0.1", port)
    assert not port_taken("127.0.0.1", port)


def test_a_callers_fault_message_has_the_details_only_when_asked() -> None:
    failing = ReplicasFailing(ReplicaFault("RuntimeStartupFailed", "it imports 'x'"))
    assert "status says why" in failing.for_caller("api")
    assert "it imports 'x'" not in failing.for_caller("api")
    detailed = failing.for_caller("api", details=True)
    assert detailed == "'api' cannot start a replica: its code fails to start: it imports 'x'"
