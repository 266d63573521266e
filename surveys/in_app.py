"""In-app widget endpoints (stub: to be written)."""

from django.http import HttpResponse


def config(request):
    return HttpResponse("todo")


answer = dismiss = config
