"""hanshu_operator: the kopf operator that turns Functions and Triggers into workloads, and
the autoscaler that sizes them from the gateway's request-queue metrics.

Run it with ``python -m hanshu_operator`` (or ``kopf run -m hanshu_operator.handlers``).
"""
