"""Webhook and Slack settings pages (stub: to be written)."""

from django.http import HttpResponse


def webhook_list(request):
    return HttpResponse("todo")


webhook_detail = webhook_delete = delivery_redeliver = slack_settings = webhook_list
