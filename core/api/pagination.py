"""Page-number pagination whose page size a client may choose, up to a cap."""

from __future__ import annotations

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from core.query_params import query_int


class CappedPageNumberPagination(PageNumberPagination):
    """`page` and `page_size` parsed as every integer parameter is (a 400 naming one that is not a number);
    a page past the last is DRF's 404, a page size above the cap gets the cap."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_number(self, request: Request, paginator: Paginator) -> int:
        if request.query_params.get(self.page_query_param) in self.last_page_strings:
            return paginator.num_pages
        return query_int(request.query_params, self.page_query_param, default=1, minimum=1)

    def get_page_size(self, request: Request) -> int:
        size = query_int(request.query_params, self.page_size_query_param, default=self.page_size, minimum=1)
        return min(size, self.max_page_size)
