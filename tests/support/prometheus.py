"""A real Prometheus server on loopback (Debian's ``prometheus`` package, 2.42 in CI),
scraping the targets a test names, and the queries a test makes of it through its HTTP API.

The dashboard's and the alert rules' expressions are evaluated here exactly as Grafana and
the rule evaluator would send them: text through ``/api/v1/query``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.servers import free_port

# The scrape interval the tests use: short, so a counter's final value is seen within a
# second or two of the load that moved it.
SCRAPE_INTERVAL_SECONDS = 1


class QueryFailed(AssertionError):
    """Prometheus refused an expression (a parse error, a type error): names which one."""


@dataclass
class Series:
    labels: dict[str, str]
    value: float


class Prometheus:
    """A running Prometheus: its URL, and queries of it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                answer: dict[str, Any] = json.load(reply)
        except urllib.error.HTTPError as refused:  # 400 (bad expression), 422 (cannot run)
            answer = json.loads(refused.read() or b"{}")
        if answer.get("status") != "success":
            raise QueryFailed(
                f"Prometheus refused {params.get('query', path)!r}: "
                f"{answer.get('errorType')}: {answer.get('error')}"
            )
        return answer["data"]  # type: ignore[no-any-return]

    def query(self, expression: str, at: float | None = None) -> list[Series]:
        """An instant query (at ``at``, a Unix time, else now): its series, each with its
        labels and value. Scalars and strings come back as one series without labels."""
        params = {"query": expression}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [Series({}, float(data["result"][1]))]
        return [Series(dict(s["metric"]), float(s["value"][1])) for s in data["result"]]

    def targets_up(self) -> bool:
        """Every target scraped at least once, and up."""
        targets = self._get("/api/v1/targets", {"state": "active"})["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def prometheus_binary() -> str:
    """The prometheus on PATH; the test skips, saying why, only when there is none."""
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip(
            "no prometheus binary on PATH: install Debian's package "
            "(apt-get install prometheus), as .ci/run does"
        )
    return found


def scrape_config(targets: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A Prometheus configuration scraping each job's ``host:port`` targets every
    SCRAPE_INTERVAL_SECONDS (``/metrics``, the path every Hanshu component serves)."""
    interval = f"{SCRAPE_INTERVAL_SECONDS}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": list(addresses)}],
            }
            for job, addresses in targets.items()
        ],
    }


def start_prometheus(targets: Mapping[str, Sequence[str]], folder: Path) -> Prometheus:
    """Prometheus on a free loopback port, its data in ``folder``; returns once it is ready
    (``/-/ready``), which is before its first scrape: wait for ``targets_up`` for that."""
    binary = prometheus_binary()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets)))
    port = free_port()
    log_path = folder / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                # Debian's build looks for its console files under /etc; none are needed.
                f"--web.console.templates={folder}",
                f"--web.console.libraries={folder}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(process, port, log_path)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited ({process.returncode}): {prometheus.logs()}")
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as reply:
                if reply.status == 200:
                    return prometheus
        except OSError:
            pass
        if time.monotonic() > deadline:
            prometheus.stop()
            pytest.fail(f"prometheus did not become ready: {prometheus.logs()}")
        time.sleep(0.05)


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Any]:
    """``start(targets)`` starts a Prometheus scraping ``{job: ["host:port", ...]}``;
    every one started is stopped after the test. Without a prometheus binary the test
    skips here, before it starts anything else."""
    prometheus_binary()
    started: list[Prometheus] = []

    def start(targets: Mapping[str, Sequence[str]]) -> Prometheus:
        prometheus = start_prometheus(targets, tmp_path / f"prometheus-{len(started)}")
        started.append(prometheus)
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()


# Grafana's variables, and what a query gets in their place when run outside Grafana.
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def concrete(expression: str, values: Mapping[str, str]) -> str:
    """A panel's expression with each Grafana variable (``$namespace``, ``${function}``,
    ``$__rate_interval``) replaced by its value in ``values``; a variable without one is
    an error naming it, so a new variable cannot slip through unevaluated."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(
                f"the expression {expression!r} uses ${name}, which has no value here "
                f"(known: {', '.join(sorted(values))})"
            )
        return values[name]

    return _VARIABLE.sub(value, expression)


@dataclass
class Panel:
    title: str
    # (legend, expression) of each of its queries.
    targets: list[tuple[str, str]]


def dashboard_panels(dashboard: Mapping[str, Any]) -> list[Panel]:
    """Every panel with queries, rows' nested panels included."""
    found: list[Panel] = []
    for panel in dashboard.get("panels", []):
        found.extend(dashboard_panels(panel))  # a collapsed row holds its panels
        targets = [
            (str(t.get("legendFormat", "")), str(t["expr"]))
            for t in panel.get("targets", [])
            if t.get("expr")
        ]
        if targets:
            found.append(Panel(str(panel.get("title", "")), targets))
    return found


@dataclass
class Rule:
    name: str
    expression: str
    source: str


def rules_in(path: Path) -> list[Rule]:
    """Every alerting and recording rule in a rule file: a plain Prometheus rule file
    (``groups:``) or a PrometheusRule object (``spec.groups``)."""
    found: list[Rule] = []
    for document in yaml.safe_load_all(path.read_text()):
        if not isinstance(document, dict):
            continue
        groups = document.get("groups")
        if groups is None:
            groups = (document.get("spec") or {}).get("groups")
        if groups is None:
            raise ValueError(
                f"{path}: neither a rule file (groups: at the top) nor a PrometheusRule "
                "(spec.groups)"
            )
        for group in groups:
            for rule in group.get("rules") or []:
                name = rule.get("alert") or rule.get("record")
                if not name or not rule.get("expr"):
                    raise ValueError(
                        f"{path}, group {group.get('name')!r}: a rule needs alert or record, "
                        f"and expr; got {sorted(rule)}"
                    )
                found.append(Rule(str(name), str(rule["expr"]), str(path)))
    return found


__all__ = [
    "SCRAPE_INTERVAL_SECONDS",
    "Panel",
    "Prometheus",
    "QueryFailed",
    "Rule",
    "Series",
    "concrete",
    "dashboard_panels",
    "prometheus_binary",
    "prometheus_factory",
    "rules_in",
    "scrape_config",
    "start_prometheus",
]
