"""Query strings as people and scripts type them: every page and every API list answers odd
values of the parameters the app reads (superscript digits, which str.isdigit() accepts and
int() refuses; numbers too large for a bigint column; negatives, fractions, NUL) with a page
or a 4xx, never a 500."""

import pytest
from django.urls import reverse

from nps_platform.params import whole_number
from tests.test_isolation_matrix import MATRIX, _key_headers

pytestmark = pytest.mark.django_db

# Every parameter name a page, an export or an API list reads.
NAMES = (
    "score", "owner", "segment", "account", "theme", "category", "playbook", "channel",
    "has_comment", "from", "to", "q", "page", "page_size", "period", "survey", "status",
    "sort", "group_by", "trend", "person_id", "per_page", "since", "until", "cursor",
    "account_external_id", "submitted_after", "submitted_before", "min_score", "max_score",
)  # fmt: skip
ODD_VALUES = ("²", "9" * 30, "-1", "1.5", "\x00")

ROUTES = sorted(
    name
    for name, entry in MATRIX.items()
    if entry.kind in {"page", "api_list", "compat_list"}
    and entry.method == "get"
    and all(str(value).startswith("literal:") for value in entry.kwargs.values())
)


@pytest.mark.parametrize("name", ROUTES)
@pytest.mark.parametrize(
    "value", ODD_VALUES, ids=["superscript", "huge", "negative", "fraction", "nul"]
)
def test_it_answers_odd_query_values_without_a_server_error(client, alice, api_key_a, name, value):
    entry = MATRIX[name]
    headers = {}
    if entry.kind == "page":
        client.force_login(alice)
    else:
        headers = _key_headers(entry, api_key_a[1])
    kwargs = {key: literal.removeprefix("literal:") for key, literal in entry.kwargs.items()}
    answer = client.get(reverse(name, kwargs=kwargs), dict.fromkeys(NAMES, value), headers=headers)
    assert answer.status_code < 500, (name, value, answer.status_code)


@pytest.mark.parametrize(
    ("raw", "number"),
    [("7", 7), (" 42 ", 42), (0, 0), (12, 12), ("9" * 18, 10**18 - 1), ("9" * 19, None),
     ("²", None), ("٣", None), ("-1", None), ("1.5", None), ("", None), (True, None),
     (-3, None), (None, None), (7.0, None)],
)  # fmt: skip
def test_it_reads_whole_numbers_of_ascii_digits_a_bigint_holds(raw, number):
    assert whole_number(raw) == number
