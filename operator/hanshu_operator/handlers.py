"""Every kopf handler of the operator, registered on import: ``kopf run -m
hanshu_operator.handlers`` (or ``python -m hanshu_operator``).

- startup: settings, login, the autoscaler's intake, clean-up
- functions: Function -> code ConfigMap + Deployment + Service + NetworkPolicy, status
- triggers: Trigger -> bound to its Function, status; the schedule daemon
"""

from . import functions, startup, triggers

__all__ = ["functions", "startup", "triggers"]
