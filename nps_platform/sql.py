"""Values for hand-written PostgreSQL statements."""

from datetime import datetime


def pg_array(values: list) -> str:
    """A list of whole numbers, text or aware datetimes as a PostgreSQL array literal, for a
    parameter cast to an array type (`%s::text[]`): psycopg adapts a list element by
    element, which cost 1.4 ms for 1,000 emails and 2.7 ms for 630 moments, against 0.3 and
    0.8 ms for this. Text is quoted and escaped; None is NULL."""
    cells = []
    moments: dict = {}  # a batch repeats a few moments many times
    for value in values:
        if value is None:
            cells.append("NULL")
        elif type(value) is int:
            cells.append(str(value))
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("pg_array takes aware datetimes only.")
            cell = moments.get(value)
            if cell is None:
                cell = moments[value] = f'"{value.isoformat()}"'
            cells.append(cell)
        elif isinstance(value, str):
            cells.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            raise TypeError(f"pg_array takes whole numbers, text and datetimes, not {value!r}.")
    return "{" + ",".join(cells) + "}"
