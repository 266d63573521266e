"""Respondent pages (stub: to be written)."""

from django.http import HttpResponse


def respond(request, token):
    return HttpResponse("todo")


def unsubscribe(request, token):
    return HttpResponse("todo")


def share_link(request, public_id):
    return HttpResponse("todo")
