"""hanshu_gateway: the HTTP entry of Hanshu. Routes by Trigger, protects (API keys, rate
limits, CORS, body limits), forwards to the least-busy ready replica, holds requests while a
Function is cold, and reports per-function stats to the autoscaler."""
