"""Bookinfo `productpage`: the web page and API in front of details and reviews.

Behaves like Istio's Flask productpage where the mesh tasks can see it:

    GET  /, /index.html                 index page listing the services
    GET  /productpage                   "Simple Bookstore App": book, details, reviews (stars coloured by
                                        the reviews version, "Reviews served by: <pod> (<version>)")
    GET  /api/v1/products               the product list
    GET  /api/v1/products/<id>          details' JSON          (status: details' status, or 500)
    GET  /api/v1/products/<id>/reviews  reviews' JSON          (status: reviews' status, or 500)
    GET  /api/v1/products/<id>/ratings  ratings' JSON          (status: ratings' status, or 500)
    POST /login                         form field `username`: sets cookie `user`, redirects back
    GET  /logout                        clears the cookie, redirects back
    GET  /static/...                    a small stylesheet
    GET  /health                        "Product page is healthy"

Calls, with the original's semantics: details once with a 3 s timeout; reviews with a 3 s timeout,
tried twice (the "bug" Istio's fault-injection task relies on: about 6 s worst case); ratings (API
only) once, 3 s. On failure the page shows "Sorry, product details are currently unavailable for
this book." / "Sorry, product reviews are currently unavailable for this book.".
Every call carries the propagated headers of the inbound request (x-request-id, b3, x-b3-*,
x-ot-span-context, traceparent/tracestate, end-user, user-agent, cookie) and, when a user is
logged in, ``end-user: <user>``.

Env: DETAILS_/REVIEWS_/RATINGS_HOSTNAME and _SERVICE_PORT, SERVICES_DOMAIN (where the services are;
default <name>:9080); DETAILS_TIMEOUT, REVIEWS_TIMEOUT, RATINGS_TIMEOUT (seconds, default 3; for
tests). Run: ``python3 productpage.py [PORT]``.
"""

from __future__ import annotations

import html
import os
import sys
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from bookinfo_common import (
    App,
    Request,
    Response,
    Upstream,
    env_float,
    html_response,
    http_get,
    json_response,
    redirect,
    run,
    text_response,
)

DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Sorry, product ratings are currently unavailable for this book."
REVIEWS_ATTEMPTS = 2
"""The original calls reviews twice before giving up; Istio's fault-injection task depends on it."""

PRODUCTS = [
    {
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": (
            '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
            "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest "
            "and one of his most farcical comedies, with a major part of the humour coming from slapstick "
            "and mistaken identity, in addition to puns and word play."
        ),
    }
]

STATIC = {
    "/static/bookinfo.css": (
        "text/css",
        "body{font-family:sans-serif;margin:0}nav{background:#1f2937;color:#fff;padding:1em}"
        ".section{margin:1em 2em}.stars{font-size:1.4em}.error{color:#c00}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em}\n",
    ),
}


@dataclass(frozen=True)
class Settings:
    details: Upstream
    reviews: Upstream
    ratings: Upstream
    details_timeout: float
    reviews_timeout: float
    ratings_timeout: float

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            Upstream.from_env("details"),
            Upstream.from_env("reviews"),
            Upstream.from_env("ratings"),
            env_float("DETAILS_TIMEOUT", 3.0),
            env_float("REVIEWS_TIMEOUT", 3.0),
            env_float("RATINGS_TIMEOUT", 3.0),
        )


SETTINGS = Settings.from_env()


# ---------------------------------------------------------------------------------------------
# Session and headers


def current_user(req: Request) -> str:
    """The user named by the `user` cookie, or "" when nobody is logged in."""
    cookie = SimpleCookie()
    try:
        cookie.load(req.headers.get("cookie", ""))
    except CookieError:
        return ""
    morsel = cookie.get("user")
    return morsel.value if morsel else ""


def forward_headers(req: Request) -> dict[str, str]:
    """Headers for the outbound calls: the propagated ones, and `end-user` from the session."""
    headers = req.propagated()
    user = current_user(req)
    if user:
        headers["end-user"] = user
    return headers


def user_cookie(user: str, clear: bool = False) -> tuple[str, str]:
    cookie: SimpleCookie = SimpleCookie()
    cookie["user"] = user
    cookie["user"]["path"] = "/"
    if clear:
        cookie["user"]["max-age"] = 0
    return "Set-Cookie", cookie["user"].OutputString()


# ---------------------------------------------------------------------------------------------
# Calls to the other services


def call(
    upstream: Upstream, path: str, headers: dict[str, str], timeout: float, attempts: int, error: str
) -> tuple[int, object]:
    """(status, JSON document) of the upstream call, or (its status or 500, {"error": error})."""
    status: int | None = None
    for _ in range(attempts):
        result = http_get(upstream, path, headers, timeout)
        status = result.status
        if status == 200:
            try:
                return 200, result.json()
            except ValueError:
                status = None
        else:
            print(
                f"productpage: GET {upstream.url(path)} failed: {result.error or status}",
                file=sys.stderr,
                flush=True,
            )
    return status or 500, {"error": error}


def get_details(product_id: str, headers: dict[str, str]) -> tuple[int, object]:
    path = f"/details/{product_id}"
    return call(SETTINGS.details, path, headers, SETTINGS.details_timeout, 1, DETAILS_UNAVAILABLE)


def get_reviews(product_id: str, headers: dict[str, str]) -> tuple[int, object]:
    path = f"/reviews/{product_id}"
    return call(
        SETTINGS.reviews, path, headers, SETTINGS.reviews_timeout, REVIEWS_ATTEMPTS, REVIEWS_UNAVAILABLE
    )


def get_ratings(product_id: str, headers: dict[str, str]) -> tuple[int, object]:
    path = f"/ratings/{product_id}"
    return call(SETTINGS.ratings, path, headers, SETTINGS.ratings_timeout, 1, RATINGS_UNAVAILABLE)


# ---------------------------------------------------------------------------------------------
# HTML


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str, user: str) -> str:
    if user:
        account = f'<span class="user">{_e(user)}</span> <a href="logout">sign out</a>'
    else:
        account = (
            '<form method="post" action="login" name="login_form">'
            '<input name="username" placeholder="username"> <input name="passwd" type="password" '
            'placeholder="password"> <button type="submit">Sign in</button></form>'
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f'<title>{_e(title)}</title><link rel="stylesheet" href="static/bookinfo.css"></head>\n'
        f"<body><nav><b>BookInfo Sample</b> {account}</nav>\n{body}</body></html>\n"
    )


def details_html(status: int, details: object) -> str:
    if status != 200 or not isinstance(details, dict):
        error = details.get("error", "") if isinstance(details, dict) else ""
        return f'<h4 class="error">Error fetching product details</h4><p class="error">{_e(error)}</p>'
    cells = "".join(
        f"<th>{_e(k)}</th>" for k in ("Type", "Pages", "Publisher", "Language", "ISBN-10", "ISBN-13")
    )
    values = "".join(
        f"<td>{_e(details.get(k, ''))}</td>"
        for k in ("type", "pages", "publisher", "language", "ISBN-10", "ISBN-13")
    )
    return (
        f"<h4>Book Details</h4><p>by {_e(details.get('author', ''))}, {_e(details.get('year', ''))}</p>"
        f"<table><tr>{cells}</tr><tr>{values}</tr></table>"
    )


def rating_html(rating: object) -> str:
    if not isinstance(rating, dict):
        return ""
    stars = rating.get("stars")
    if isinstance(stars, int):
        color = str(rating.get("color", "black"))
        shown = "★" * max(0, min(stars, 5)) + "☆" * max(0, 5 - stars)
        return (
            f'<span class="stars" style="color: {_e(color)}" data-color="{_e(color)}" '
            f'data-stars="{stars}" title="{stars} of 5 ({_e(color)} stars)">{shown}</span>'
        )
    if "error" in rating:
        return f'<p class="error rating-error">{_e(rating["error"])}</p>'
    return ""


def reviews_html(status: int, reviews: object) -> str:
    if status != 200 or not isinstance(reviews, dict):
        error = reviews.get("error", "") if isinstance(reviews, dict) else ""
        return f'<h4 class="error">Error fetching product reviews</h4><p class="error">{_e(error)}</p>'
    served_by = _e(reviews.get("podname", ""))
    version = reviews.get("version")
    if version:
        served_by += f' (<span class="reviews-version">{_e(version)}</span>)'
    cluster = reviews.get("clustername")
    if cluster and cluster != "null":
        served_by += f" on cluster {_e(cluster)}"
    parts = ["<h4>Book Reviews</h4>"]
    for review in reviews.get("reviews") or []:
        if not isinstance(review, dict):
            continue
        parts.append(
            '<div class="review">'
            f"<blockquote><p>{_e(review.get('text', ''))}</p></blockquote>"
            f"<small>{_e(review.get('reviewer', ''))}</small> {rating_html(review.get('rating'))}"
            f'<div class="served-by">Reviews served by: {served_by}</div></div>'
        )
    return "".join(parts)


def product_page(req: Request) -> Response:
    product_id = "0"
    headers = forward_headers(req)
    details_status, details = get_details(product_id, headers)
    reviews_status, reviews = get_reviews(product_id, headers)
    product = PRODUCTS[0]
    body = (
        f'<div class="section"><h1>{_e(product["title"])}</h1><p>{product["descriptionHtml"]}</p></div>\n'
        f'<div class="section details">{details_html(details_status, details)}</div>\n'
        f'<div class="section reviews">{reviews_html(reviews_status, reviews)}</div>\n'
    )
    return html_response(page("Simple Bookstore App", body, current_user(req)))


def index_page(req: Request) -> Response:
    """The services productpage calls, with the timeouts in force (tests read them here)."""
    s = SETTINGS
    rows = "".join(
        f'<tr class="upstream" data-service="{name}"><td>{name}</td><td>{_e(up.url(path))}</td>'
        f'<td class="timeout">{timeout:g}</td><td class="attempts">{attempts}</td></tr>'
        for name, up, path, timeout, attempts in (
            ("details", s.details, "/details", s.details_timeout, 1),
            ("reviews", s.reviews, "/reviews", s.reviews_timeout, REVIEWS_ATTEMPTS),
            ("ratings", s.ratings, "/ratings", s.ratings_timeout, 1),
        )
    )
    body = (
        '<div class="section"><h2>Hello! This is a simple bookstore application consisting of three '
        "services as shown below</h2>"
        "<table><tr><th>service</th><th>endpoint</th><th>timeout (s)</th><th>attempts</th></tr>"
        f"{rows}</table>"
        '<p><a href="productpage?u=normal">Normal user</a> | '
        '<a href="productpage?u=test">Test user</a></p></div>'
    )
    return html_response(page("Simple Bookstore App", body, current_user(req)))


# ---------------------------------------------------------------------------------------------
# Routing


def api(req: Request, parts: list[str]) -> Response:
    """``parts`` = the path after /api/v1/products, split on "/"."""
    if not parts:
        return json_response(PRODUCTS)
    headers = forward_headers(req)
    if len(parts) == 1:
        status, doc = get_details(parts[0], headers)
    elif len(parts) == 2 and parts[1] == "reviews":
        status, doc = get_reviews(parts[0], headers)
    elif len(parts) == 2 and parts[1] == "ratings":
        status, doc = get_ratings(parts[0], headers)
    else:
        return json_response({"error": f"no route for {req.path}"}, 404)
    return json_response(doc, status)


def back_to(req: Request) -> str:
    return req.headers.get("referer") or "productpage"


def route(req: Request) -> Response:
    path = req.path
    if path in ("/", "/index.html"):
        return index_page(req)
    if path == "/health":
        return text_response("Product page is healthy")
    if path == "/productpage":
        return product_page(req)
    if path == "/login":
        if req.method != "POST":
            return text_response("use POST with form field username", 405)
        user = req.form().get("username", "")
        return redirect(back_to(req), [user_cookie(user, clear=not user)])
    if path == "/logout":
        return redirect(back_to(req), [user_cookie("", clear=True)])
    if path.startswith("/static/"):
        if path in STATIC:
            content_type, text = STATIC[path]
            return Response(200, text.encode(), content_type)
        return text_response("not found", 404)
    if path == "/api/v1/products" or path.startswith("/api/v1/products/"):
        parts = [p for p in path[len("/api/v1/products") :].split("/") if p]
        return api(req, parts)
    return text_response("not found", 404)


def main() -> None:
    run(App("productpage", os.environ.get("SERVICE_VERSION") or "v1", route), sys.argv)


if __name__ == "__main__":
    main()
