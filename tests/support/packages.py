"""Our packages, each with the folder it lives in (``api/hanshu_api``, ...): what the
layering and image-dependency tests walk."""

FOLDERS = {
    "hanshu_api": "api",
    "hanshu_wire": "wire",
    "hanshu_runtime": "runtime",
    "hanshu_operator": "operator",
    "hanshu_autoscaler": "autoscaler",
    "hanshu_gateway": "gateway",
    "hanshu_dispatcher": "dispatcher",
    "hanshu_cli": "cli",
}
