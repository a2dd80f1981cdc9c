"""`newsrec serve`: a small server-rendered web application (FastAPI + Jinja2, no JavaScript) over either backend.

Pages: `/` (pick a reader; their history; recommendations with each phase's score and, in words, why each is where
it is; a category filter and the ranking profile, of those the index can serve; search, personalized when a reader
is chosen, with matches per category; the popular news), laid out for a desktop and for a phone's width.
JSON beside them: `/api/users`, `/api/users/{id}`, `/api/recommend`, `/api/search`, `/api/popular`,
`/api/categories`. Bad input is a message on the page (and its status) and a 4xx JSON `{"error": ...}` from the
API; a failing backend is a 502. What is computed is in newsrec/web/service.py.

Readers are private: their ids, histories, recommendations and personalized search are shown to anyone only when
the page listens on loopback; beyond it, only to requests carrying the reader token (`ReaderAccess`), and to nobody
without one (a 403 that says so). `newsrec serve` warns when it listens beyond loopback.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, Request as HttpRequest
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates

from newsrec.feed.backend import BackendError
from newsrec.web.service import Request, Service, WebInputError, date_text, parse_request, score_of
from newsrec.pipeline.errors import NewsrecError

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
TEMPLATES.env.globals["fmt"] = lambda value, places=4: "" if value is None else f"{value:.{places}f}"
TEMPLATES.env.globals["score_of"] = score_of
TEMPLATES.env.filters["date"] = date_text


@dataclass(frozen=True)
class ReaderAccess:
    """Who may see readers (their ids, histories, recommendations and personalized search): anyone when the page
    listens on loopback only and no token is set; otherwise only a request carrying the token
    (`Authorization: Bearer TOKEN`), and nobody when there is no token."""

    token: str | None = None
    loopback: bool = True

    def allows(self, http: HttpRequest) -> bool:
        if self.token is None:
            return self.loopback
        given = http.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())

    def refusal(self) -> str:
        return ("reader pages need the token this page was started with (Authorization: Bearer TOKEN)"
                if self.token is not None else
                "reader pages are off: this page listens beyond loopback without a reader token "
                "(newsrec serve --reader-token-file FILE, or NEWSREC_READER_TOKEN)")


def create_app(backend, access: ReaderAccess = ReaderAccess()) -> FastAPI:
    """The application over one open backend (feed.connect.open_backend); readers shown as `access` allows."""
    service = Service(backend)
    app = FastAPI(title="newsrec", docs_url=None, redoc_url=None, openapi_url=None)

    def readers(http: HttpRequest, compute):
        if not access.allows(http):
            return JSONResponse({"error": access.refusal()}, status_code=403)
        return answer(compute)

    @app.get("/", response_class=HTMLResponse)
    def page(http: HttpRequest):
        context, status = page_context(service, dict(http.query_params), access.allows(http), access.refusal())
        return TEMPLATES.TemplateResponse(http, "page.html", context, status_code=status)

    @app.get("/api/users")
    def users(http: HttpRequest, limit: int = 12):
        return readers(http, lambda: {"users": service.users(max(1, min(limit, 100)))})

    @app.get("/api/users/{user_id}")
    def user(http: HttpRequest, user_id: str):
        return readers(http, lambda: service.history(parse_request({"user": user_id}).user))

    @app.get("/api/recommend")
    def recommend(http: HttpRequest):
        return readers(http, lambda: service.recommendations(parse_request(dict(http.query_params))))

    @app.get("/api/search")
    def search(http: HttpRequest):
        request = lambda: service.search(parse_request(dict(http.query_params)))  # noqa: E731
        return readers(http, request) if "user" in http.query_params else answer(request)

    @app.get("/api/popular")
    def popular(http: HttpRequest):
        return answer(lambda: service.popular(parse_request(dict(http.query_params))))

    @app.get("/api/categories")
    def categories():
        return answer(lambda: {"categories": service.categories()})

    return app


def error_status(error: NewsrecError) -> int:
    """The HTTP status of a failed request: the input error's own, 502 for a failing backend, else 400 (a query
    the backend refused as malformed)."""
    if isinstance(error, WebInputError):
        return error.status
    return 502 if isinstance(error, BackendError) else 400


def answer(compute) -> JSONResponse | dict:
    try:
        return compute()
    except NewsrecError as error:
        return JSONResponse({"error": str(error)}, status_code=error_status(error))


def page_context(service: Service, params: dict[str, str], readers: bool = True,
                 refusal: str = "") -> tuple[dict, int]:
    """Everything the page shows, and its status: 200, or the status of the first problem, whose message is shown
    above whatever could still be answered. Without `readers`, no reader is listed and a reader asked for is a
    403 (`refusal` says why)."""
    context = {"backend": service.description, "is_vespa": service.is_vespa, "messages": [], "params": params}
    status = 200
    if not readers and params.get("user") is not None:
        context["messages"].append(refusal)
        params, status = {k: v for k, v in params.items() if k != "user"}, 403
    try:
        request = parse_request(params)
    except WebInputError as error:
        context["messages"].append(str(error))
        request, status = Request(), error.status
    context["query"] = request  # not "request": Starlette's template response keeps the HTTP request there
    failed: list[int] = []
    for name, compute in sections(service, request, readers):
        try:
            context[name] = compute()
        except NewsrecError as error:
            failed.append(error_status(error))
            if str(error) not in context["messages"]:
                context["messages"].append(str(error))
    if request.user is not None and "recommendations" not in context and 404 in failed:
        context["fallback"] = True  # an unknown reader: the popular news stand in, as the recommend API does
    return context, status if status != 200 or not failed else failed[0]


def sections(service: Service, request: Request, readers: bool = True) -> list[tuple[str, Callable[[], object]]]:
    """(context name, what computes it) of every part of the page the request asks for (the readers' list only
    where `readers`)."""
    parts = [("profiles", service.profiles), ("unserved", service.unserved),
             *([("users", service.users)] if readers else []),
             ("categories", service.categories), ("popular", lambda: service.popular(request))]
    if request.user is not None:
        parts += [("history", lambda: service.history(request.user)),
                  ("recommendations", lambda: service.recommendations(request))]
    if request.text is not None or request.sort is not None:
        parts.append(("search", lambda: service.search(request)))
    return parts
