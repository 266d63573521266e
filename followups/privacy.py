"""What followups/ holds about a person, for the GDPR export and erasure in accounts/.

Drafts, closing notes and the activity log's messages can quote the person or name them;
on erasure they go, while the follow-up's status, outcome and timings stay for the loop
figures.
"""

from followups.models import Activity, FollowUp


def contact_followups_export(*, organization, contact) -> list[dict]:
    followups = (
        FollowUp.objects.filter(organization=organization, contact=contact)
        .prefetch_related("activities")
        .order_by("created_at", "pk")
    )
    return [
        {
            "id": followup.pk,
            "response_id": followup.response_id,
            "playbook": followup.playbook,
            "status": followup.status,
            "outcome": followup.outcome,
            "draft_subject": followup.draft_subject,
            "draft_body": followup.draft_body,
            "closing_notes": followup.closing_notes,
            "created_at": followup.created_at,
            "closed_at": followup.closed_at,
            "activity": [
                {"kind": activity.kind, "message": activity.message, "at": activity.created_at}
                for activity in followup.activities.all()
            ],
        }
        for followup in followups
    ]


def contact_followups_erase(*, organization, contact) -> int:
    followups = FollowUp.objects.filter(organization=organization, contact=contact)
    Activity.objects.filter(organization=organization, followup__in=followups).update(
        message="", data={}
    )
    return followups.update(draft_subject="", draft_body="", closing_notes="")
