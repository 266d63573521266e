"""Webhook and Slack settings pages (admins), under /settings/ as `response_settings`."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from nps_platform.access import member_required
from responses import slack, webhooks
from responses.forms_settings import SlackAlertForm, WebhookEndpointForm
from responses.models import DeliveryStatus, WebhookEvent


def _no_store(response):
    # The pages show a signing secret or a Slack URL (which is itself a credential).
    response["Cache-Control"] = "no-store"
    return response


def _event_labels(endpoint) -> str:
    if not endpoint.events:
        return "All events"
    labels = dict(WebhookEvent.choices)
    return ", ".join(event for event in endpoint.events if event in labels)


@member_required("settings")
def webhook_list(request):
    organization = request.organization
    form = WebhookEndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = webhooks.endpoint_create(
            organization=organization,
            url=form.cleaned_data["url"],
            description=form.cleaned_data["description"],
            events=form.cleaned_data["events"],
            payload_format=form.cleaned_data["payload_format"],
        )
        messages.success(
            request,
            "Endpoint added. Copy its signing secret below to verify our requests.",
        )
        return redirect("response_settings:webhook_detail", endpoint_id=endpoint.pk)
    endpoints = list(webhooks.endpoints_of(organization))
    for endpoint in endpoints:
        endpoint.event_labels = _event_labels(endpoint)
    context = {"tab": "webhooks", "form": form, "endpoints": endpoints}
    return render(request, "responses/settings_webhooks.html", context)


@member_required("settings")
def webhook_detail(request, endpoint_id: int):
    organization = request.organization
    endpoint = webhooks.get_endpoint_for(organization, endpoint_id)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "enable":
            webhooks.endpoint_enable(organization=organization, endpoint=endpoint)
            messages.success(request, "Endpoint enabled: new events are sent to it again.")
        elif action == "disable":
            webhooks.endpoint_disable(
                organization=organization, endpoint=endpoint, reason="Paused by an admin."
            )
            messages.success(request, "Endpoint paused: no events are sent until you enable it.")
        elif action == "test" and endpoint.is_active:
            webhooks.send_test_event(organization=organization, endpoint=endpoint)
            messages.success(request, "Test event queued: see it in the delivery log below.")
        else:
            messages.error(request, "That action is not available for this endpoint.")
        return redirect("response_settings:webhook_detail", endpoint_id=endpoint.pk)
    endpoint.event_labels = _event_labels(endpoint)
    context = {
        "tab": "webhooks",
        "endpoint": endpoint,
        "deliveries": webhooks.deliveries_of(endpoint),
        "log_size": webhooks.LOG_SIZE,
        "redeliverable": {
            DeliveryStatus.SUCCEEDED,
            DeliveryStatus.FAILED,
            DeliveryStatus.RETRYING,
            DeliveryStatus.PENDING,
        },
    }
    return _no_store(render(request, "responses/settings_webhooks_detail.html", context))


@require_POST
@member_required("settings")
def webhook_delete(request, endpoint_id: int):
    endpoint = webhooks.get_endpoint_for(request.organization, endpoint_id)
    webhooks.endpoint_delete(organization=request.organization, endpoint=endpoint)
    messages.success(request, f"The endpoint {endpoint.url} was deleted with its delivery log.")
    return redirect("response_settings:webhooks")


@require_POST
@member_required("settings")
def delivery_redeliver(request, delivery_id: int):
    delivery = webhooks.get_delivery_for(request.organization, delivery_id)
    try:
        webhooks.delivery_redeliver(organization=request.organization, delivery=delivery)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Delivery {delivery.event_id} queued again.")
    return redirect("response_settings:webhook_detail", endpoint_id=delivery.endpoint_id)


@member_required("settings")
def slack_settings(request):
    organization = request.organization
    alert = slack.get_slack_alert(organization)
    if request.method == "POST" and request.POST.get("action") == "test":
        outcome = slack.hello_send(organization=organization)
        if outcome.status == "sent":
            messages.success(request, "Test message sent: check the Slack channel.")
        else:
            messages.error(request, f"The test message was not sent. {outcome.message}")
        return redirect("response_settings:slack")
    initial = (
        {
            "webhook_url": alert.webhook_url,
            "only_danger_zone": alert.only_danger_zone,
            "min_arr": alert.min_arr,
            "is_active": alert.is_active,
        }
        if alert
        else {"is_active": True}
    )
    form = SlackAlertForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        slack.slack_alert_save(organization=organization, **form.cleaned_data)
        messages.success(request, "Slack alerts saved.")
        return redirect("response_settings:slack")
    context = {"tab": "slack", "form": form, "alert": alert}
    return _no_store(render(request, "responses/settings_slack.html", context))
