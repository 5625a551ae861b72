"""The Hanshu autoscaler: gateways and dispatchers report each Function's requests to it;
it decides each Function's replica count, with a reason, and writes it through the
platform's "set this function's replica count" seam (``deployments/scale`` in a cluster).
Two replicas in a cluster, one leading by a Lease (``lease``).

The public entry points: ``python -m hanshu_autoscaler`` (a cluster), and for one process
(dev mode) ``AutoscalerService`` with a local ``ReplicaScaler``, the leader by itself.
"""

from .decisions import Decision, Policy
from .leadership import AlwaysLeader, Leadership
from .service import AutoscalerService, OnScaled

__all__ = ["AlwaysLeader", "AutoscalerService", "Decision", "Leadership", "OnScaled", "Policy"]
