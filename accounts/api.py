"""Accounts REST API (stub: to be written)."""

from rest_framework.views import APIView


class _Stub(APIView):
    pass


AccountListApi = AccountDetailApi = ContactListApi = ContactDetailApi = ContactExportApi = _Stub
TicketListApi = TicketDetailApi = UsageListApi = UsageDetailApi = SegmentListApi = _Stub
