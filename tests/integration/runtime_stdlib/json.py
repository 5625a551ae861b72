def handler(event, context):
    return "shadowing the standard library"
