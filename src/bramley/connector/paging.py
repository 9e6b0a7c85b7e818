"""Paging: the Stream of the "Stream Matching/All Records" result sets, fetching one page ahead."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bramley.connector import models as m

DEVICE_PAGE = 300  # the API's hard maximum page size (reference §2.4)
Helper = Callable[[Any, Any], Any]


class Stream:
    """Stream Matching/All Records: a lazy iterator over every record, page by page (one page fetched ahead while
    the current one is handed out, so at most two pages are in memory). With a helper, `helper(record, context)`
    runs for each record as it is yielded, the way the card runs its Helper flow; `run()` drains the stream and
    returns the Record Count."""

    def __init__(self, pages: Callable[[], Iterator[list]], helper: Helper | None = None, context: Any = None):
        self._pages, self.helper, self.context = pages, helper, context
        self.record_count = 0
        self.total: int | None = None  # when the API says how many there are (X-Total-Count or count)

    def __iter__(self) -> Iterator[Any]:
        self.record_count = 0
        for page in self._pages():
            for record in page:
                self.record_count += 1
                if self.helper is not None:
                    self.helper(record, self.context)
                yield record

    def run(self) -> m.ListResult:
        for _ in self:
            pass
        return m.ListResult(results=None, record_count=self.record_count)


def fetch_ahead(fetch: Callable[[Any], Any], first_key: Any, next_key: Callable[[Any], Any]) -> Iterator[Any]:
    """Yield fetch(key) results in order, starting the next fetch before the caller handles the current one.
    `next_key(result)` gives the next key, or None at the end."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bramley-connector-page")
    try:
        future = executor.submit(fetch, first_key)
        while future is not None:
            result = future.result()
            key = next_key(result)
            future = executor.submit(fetch, key) if key is not None else None
            yield result
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def next_page_query(link: str | None) -> dict[str, str] | None:
    """The query of a `next` link, replayed on our own base URL: real tenants may point `next` at the web-app
    host (reference §1), and the token must only go to the connection's host."""
    if not link:
        return None
    return {k: v[-1] for k, v in parse_qs(urlsplit(link).query).items()}
