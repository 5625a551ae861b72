"""hanshu_operator: the kopf operator that turns Functions and Triggers into workloads."""

from . import handlers  # noqa: F401  (kopf run -m hanshu_operator registers them)
