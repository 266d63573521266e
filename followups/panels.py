"""What followups/ adds to other apps' pages through their registries (responses.events):
the follow-up card on a response's page."""

from followups import selectors
from nps_platform.roles import can


def response_followup_panel(*, organization, response, request=None) -> dict | None:
    """The follow-up the response became: its status, owner, due date and priority, and a
    link to it for the members who may work the queue. None while the response has no
    follow-up (it is still being opened, or it is imported history). One query."""
    followup = (
        selectors.followups_of(organization)
        .select_related(None)
        .select_related("assignee")
        .filter(response_id=response.pk)
        .first()
    )
    if followup is None:
        return None
    membership = getattr(request, "membership", None)
    return {
        "title": "Follow-up",
        "template": "followups/_response_panel.html",
        "context": {
            "followup": followup,
            "sla": selectors.sla_badge(followup),
            "can_queue": membership is not None and can(membership.role, "queue"),
        },
    }
