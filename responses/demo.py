"""Demo answers for `seed_demo`: about 4,000 responses over twelve months, with plausible
comments in every theme. The story is not flat: a reliability incident and a price rise
pull the score down in months 5–7, and it recovers after the fixes."""

import random
from datetime import timedelta

from django.utils.timezone import now

from accounts.models import Contact
from responses.services import MAX_BATCH, responses_record

COMMENTS = {
    "detractor": [
        "The price went up again and we get nothing new for it. Too expensive for a team our size.",
        "The app crashes every time we export a report. We lost a day of work last week.",
        "Support took five days to answer a critical ticket. No one replied to my follow-up.",
        "Dashboards load so slowly that my team has stopped using them.",
        "Onboarding was a mess: the documentation is outdated and setup took weeks.",
        "We were charged twice on our last invoice and still wait for the refund.",
        "Still missing a proper Salesforce integration. We need a way to export to our BI tool.",
        "The interface is confusing, too many clicks to do anything simple.",
        "Constant outages this month. Not reliable enough for our customers.",
        "Honestly the billing is a nightmare and the price per seat is hard to justify.",
    ],
    "passive": [
        "Does the job, but the reports are slow to load.",
        "Good product overall. Would love an API for bulk updates.",
        "Pricing is fair, though the learning curve for new staff is steep.",
        "Support is friendly but not always fast.",
        "Works fine. The mobile interface could be easier to use.",
        "Solid tool; we are waiting for the integrations on your roadmap.",
        "Setup was okay once we found the right docs.",
    ],
    "promoter": [
        "Love it! The team is amazing and support always gets back to me within the hour.",
        "Great product, easy to use, and our customers noticed the difference.",
        "Best tool we bought this year. I recommend it to every CS leader I meet.",
        "Fantastic onboarding, our CSM made the migration painless.",
        "Fast, reliable and the new dashboards are brilliant. Thank you!",
        "Excellent value for money compared to what we used before.",
    ],
}

# Month offsets (0 = twelve months ago) → shift of the mean score: the dip and recovery.
STORY = {0: 0.2, 1: 0.3, 2: 0.2, 3: 0.1, 4: -0.6, 5: -1.6, 6: -1.9, 7: -0.9, 8: 0.0,
         9: 0.4, 10: 0.6, 11: 0.7}  # fmt: skip


def _score(rng: random.Random, health: int | None, month: int) -> int:
    base = 7.6 + ((health or 65) - 65) / 22 + STORY[month]
    return max(0, min(10, round(rng.gauss(base, 2.0))))


def seed_responses(*, organization, stdout, seed: int = 11, target: int = 4000) -> None:
    rng = random.Random(seed)
    contacts = list(
        Contact.objects.filter(organization=organization)
        .select_related("account")
        .order_by("pk")
        .values_list("pk", "account__health_score", "account__signed_up_on")
    )
    if not contacts:
        return
    today = now()
    items = []
    for n in range(target):
        contact_id, health, signed_up = rng.choice(contacts)
        days_ago = rng.randint(0, 364)
        submitted = today - timedelta(days=days_ago, hours=rng.randint(0, 23))
        if signed_up and submitted.date() < signed_up:
            submitted = today - timedelta(
                days=rng.randint(0, max(0, (today.date() - signed_up).days))
            )
            days_ago = (today - submitted).days
        month = min(11, (364 - days_ago) // 31)
        score = _score(rng, health, month)
        category = "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
        comment = ""
        if rng.random() < 0.62:
            pool = COMMENTS[category]
            if category == "detractor" and 4 <= month <= 7:
                pool = pool[:4] + [pool[8], pool[0], pool[1]]  # the incident and the price rise
            comment = rng.choice(pool)
        items.append(
            {
                "contact_id": contact_id,
                "score": score,
                "comment": comment,
                "submitted_at": submitted.isoformat(),
                "external_id": f"demo-{n:05d}",
            }
        )
    channels = ["email"] * 7 + ["in_app"] * 2 + ["link"]
    for start in range(0, len(items), MAX_BATCH):
        batch = items[start : start + MAX_BATCH]
        report = responses_record(
            organization=organization, items=batch, channel=rng.choice(channels)
        )
        if report.count("error"):
            raise RuntimeError(f"demo responses: {report.as_dict()['results'][:3]}")
    stdout.write(f"  {len(items)} responses over twelve months, with a dip and a recovery")
