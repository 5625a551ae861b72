def initialize(context):
    raise RuntimeError("database unreachable")


def handler(event, context):
    return "never"
