"""The NPS classification, in one pure function. Every channel and every figure uses it."""

from responses.models import Category

DANGER_ZONE_MAX = 3


def classify(score: int) -> tuple[str, bool]:
    """(category, danger_zone) for a 0–10 score: detractor 0–6, passive 7–8, promoter 9–10;
    0–3 is the danger zone."""
    if not isinstance(score, int) or isinstance(score, bool) or not 0 <= score <= 10:
        raise ValueError(f"An NPS score is a whole number from 0 to 10, not {score!r}.")
    return _CLASSES[score]


def _class_of(score: int) -> tuple[str, bool]:
    if score <= 6:
        category = Category.DETRACTOR
    elif score <= 8:
        category = Category.PASSIVE
    else:
        category = Category.PROMOTER
    return category.value, score <= DANGER_ZONE_MAX


# Looked up, not worked out: reading an enum member costs more than the rest of classifying.
_CLASSES = tuple(_class_of(score) for score in range(11))
