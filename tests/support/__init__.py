"""What the tests share and no test is: processes started on loopback, stand-in servers,
waiting for a condition, the dev platform and cluster fixtures, case tables. Test modules
import from here, never from one another or from a conftest.py (the Kubernetes API emulator
the benchmarks also use is in devtools/)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
