#!/usr/bin/env bash
# `make demo`, after the cluster, images and chart are in place: deploy examples/hello,
# wait until it is Ready (at zero replicas), then call it through the gateway from zero.
set -euo pipefail
KUBECTL=${KUBECTL:-kubectl}
GATEWAY=${GATEWAY:-http://127.0.0.1:8080}
NAMESPACE=${DEMO_NAMESPACE:-default}

"$KUBECTL" -n "$NAMESPACE" apply -f examples/hello/function.yaml -f examples/hello/trigger.yaml
"$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready fn/hello --timeout=120s
"$KUBECTL" -n "$NAMESPACE" wait --for=condition=Ready trg/hello --timeout=60s
"$KUBECTL" -n "$NAMESPACE" get fn,trg
echo
echo "replicas before the call: $("$KUBECTL" -n "$NAMESPACE" get deploy hello -o jsonpath='{.spec.replicas}')"
# curl times the call itself: request sent at zero replicas to the reply.
curl -sS -i --max-time 120 -w '\n\ncold start, request to reply: %{time_total} s\n' \
  "$GATEWAY/hello?name=Hanshu"
echo "replicas after the call:  $("$KUBECTL" -n "$NAMESPACE" get deploy hello -o jsonpath='{.spec.replicas}')"
echo "It returns to zero replicas after 30 s without requests: watch 'kubectl get fn hello'."
