def handler(event, context):
    return "Hello, world!"


async def async_handler(event, context):
    return "Hello, world!"
