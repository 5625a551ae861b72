def hello(request):
    return "Hello, world!"
