"""What responses/ adds to other apps' pages through their registries (accounts.events):
the NPS history on an account's page."""

from responses import selectors

LATEST_SHOWN = 5


def account_nps_panel(*, organization, account) -> dict | None:
    """The account's NPS over the last 12 months with its mix, the trend of its latest
    answers and the newest few with their comments; None before its first answer, so the
    account page keeps its empty state. Two queries whatever the number of answers."""
    answers = selectors.account_answers(organization, account)
    if not answers.total:
        return None
    return {
        "title": "",
        "template": "responses/_account_nps.html",
        "context": {
            "account": account,
            "summary": answers.summary,
            "total": answers.total,
            "since": answers.since,
            "trend": list(reversed(answers.recent)),  # oldest first, left to right
            "latest": answers.recent[:LATEST_SHOWN],
        },
    }
