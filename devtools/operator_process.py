"""The operator as its own process, with the packages of its image only (tests and
benchmarks that measure its memory)."""

from __future__ import annotations

from pathlib import Path

# ``python -m hanshu_operator`` without the packages the operator's image does not have.
# The dev venv also holds the `hanshu` command's Kubernetes client, which kopf imports
# whenever it is installed (for its types): 40 MiB the operator never has in a cluster.
AS_IN_THE_IMAGE = (
    "import runpy, sys\n"
    "for absent in ('kubernetes', 'kubernetes_asyncio', 'pykube'):\n"
    "    sys.modules[absent] = None  # an ImportError, as where it is not installed\n"
    "runpy.run_module('hanshu_operator', run_name='__main__', alter_sys=True)\n"
)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def chart_memory_limit_mib(values: Path) -> float:
    """``operator.resources.limits.memory`` of the chart's values, in MiB."""
    import yaml

    limit = str(yaml.safe_load(values.read_text())["operator"]["resources"]["limits"]["memory"])
    units = {"Mi": 1.0, "Gi": 1024.0, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for suffix, scale in units.items():
        if limit.endswith(suffix):
            return float(limit.removesuffix(suffix)) * scale
    return int(limit) / 2**20
