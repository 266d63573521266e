from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    """Stable pages over changing data; `?page_size=` up to 1,000."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"
