"""hanshu_api: what Hanshu's components share, in one place.

The API group and version, label and annotation keys, the spec models of Function and
Trigger, the metav1.Condition helpers and a small async Kubernetes client. Pure Python plus
aiohttp (for the client); no kopf, so the gateway can use it too.
"""

GROUP = "hanshu.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

FUNCTION_PLURAL = "functions"
TRIGGER_PLURAL = "triggers"

# Labels on everything Hanshu creates; the function label is how the gateway and the
# operator find a Function's children and pods.
LABEL_FUNCTION = f"{GROUP}/function"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "hanshu-operator"

# Changes whenever the code or the runtime configuration changes: it rolls the Deployment.
ANNOTATION_CHECKSUM = f"{GROUP}/config-checksum"

# The gateway's internal invoke, enqueue and dispatch paths take calls only with this header
# carrying the platform's internal token (a Secret the chart makes): a URL destination or a
# Function cannot reach them to invoke another namespace's Function.
INTERNAL_TOKEN_HEADER = "X-Hanshu-Internal-Token"  # noqa: S105 - a header name
INTERNAL_TOKEN_ENV = "HANSHU_INTERNAL_TOKEN"  # noqa: S105 - a variable name


def internal_headers(token: str) -> dict[str, str]:
    return {INTERNAL_TOKEN_HEADER: token} if token else {}


FUNCTION_PORT = 8080
ADMIN_PORT = 9090
RUNTIME_CONTAINER = "function"
