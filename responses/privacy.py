"""What responses/ holds about a person, for the GDPR export and erasure in accounts/.

accounts/ sends `contact_erasing` before it deletes a contact and asks each registered
exporter for its section; responses/ joins in from its AppConfig.ready(). The score and its
category stay (they are counted in the organization's figures and no longer point at
anyone); everything the person wrote or that was written about them goes.
"""

from responses.models import Response, ResponseNote, ResponseTheme


def contact_responses_export(*, organization, contact) -> list[dict]:
    responses = (
        Response.objects.filter(organization=organization, contact=contact)
        .prefetch_related("notes")
        .order_by("submitted_at", "pk")
    )
    return [
        {
            "id": response.pk,
            "score": response.score,
            "category": response.category,
            "comment": response.comment,
            "channel": response.channel,
            "tags": response.tags,
            "properties": response.properties,
            "themes": response.themes,
            "sentiment": response.sentiment,
            "submitted_at": response.submitted_at,
            "notes": [
                {"body": note.body, "author": note.author_name, "created_at": note.created_at}
                for note in response.notes.all()
            ],
        }
        for response in responses
    ]


def contact_responses_erase(*, organization, contact) -> int:
    """Drops the person's words from their answers: comments, tags, properties, notes and
    the analysis of the comment. Returns how many answers were anonymised."""
    responses = Response.objects.filter(organization=organization, contact=contact)
    ResponseNote.objects.filter(organization=organization, response__in=responses).delete()
    ResponseTheme.objects.filter(organization=organization, response__in=responses).delete()
    return responses.update(
        comment="",
        sentiment=None,
        themes=[],
        analyzed_hash="",
        tags=[],
        properties={},
    )
