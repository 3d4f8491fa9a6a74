"""The Bookinfo sample apps, run as real processes on loopback without a mesh.

What the mesh tests will rely on: the page shows details and reviews; reviews versions differ
visibly (no stars / black / red); login turns into `end-user` on the calls to reviews and ratings;
tracing headers are propagated; failures and timeouts give Istio's error texts; the fault knob.
"""

from __future__ import annotations

import http.client
import re
import time
from typing import Any

import pytest

from tests.unit.samples.conftest import (
    BOOKINFO_APPS,
    Bookinfo,
    HangingServer,
    Launcher,
    RefusingPort,
    upstream_env,
)

DETAILS_ERROR = "Sorry, product details are currently unavailable for this book."
REVIEWS_ERROR = "Sorry, product reviews are currently unavailable for this book."
RATINGS_ERROR = "Ratings service is currently unavailable"

TRACE_HEADERS = {
    "x-request-id": "5e4e8a2b-req-1",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "0",
    "x-ot-span-context": "ot-ctx",
    "traceparent": "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
    "tracestate": "vendor=1",
    "user-agent": "pilotfish-test/1",
}


def as_dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict), value
    return value


def star_spans(page: str) -> list[tuple[str, int]]:
    """(color, stars) of every rating shown on the page, in order."""
    return [
        (color, int(stars))
        for color, stars in re.findall(r'class="stars"[^>]*data-color="([^"]+)" data-stars="(\d+)"', page)
    ]


# ---------------------------------------------------------------------------------------------
# The page and the reviews versions


def test_productpage_shows_book_details_and_reviews(bookinfo: Bookinfo) -> None:
    page = bookinfo.productpage["v1"].get("/productpage")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert "<title>Simple Bookstore App</title>" in html
    assert "The Comedy of Errors" in html
    assert "Book Details" in html
    assert "PublisherA" in html and "1234567890" in html and "paperback" in html
    assert "Book Reviews" in html
    assert "An extremely entertaining play by Shakespeare." in html
    assert "Reviewer2" in html
    assert DETAILS_ERROR not in html and REVIEWS_ERROR not in html


@pytest.mark.parametrize(
    ("version", "stars"),
    [("v1", []), ("v2", [("black", 5), ("black", 4)]), ("v3", [("red", 5), ("red", 4)])],
)
def test_reviews_version_is_visible_on_the_page(
    bookinfo: Bookinfo, version: str, stars: list[object]
) -> None:
    html = bookinfo.productpage[version].get("/productpage").text
    assert star_spans(html) == stars
    assert (
        f'Reviews served by: reviews-{version}-test (<span class="reviews-version">{version}</span>)' in html
    )
    assert RATINGS_ERROR not in html


@pytest.mark.parametrize(
    ("version", "color", "timeout"),
    [("v1", None, None), ("v2", "black", 10.0), ("v3", "red", 2.5)],
)
def test_reviews_json_per_version(
    bookinfo: Bookinfo, version: str, color: str | None, timeout: float
) -> None:
    """Ratings only from v2/v3, with the original's colours and ratings timeouts (10 s / 2.5 s)."""
    doc = as_dict(bookinfo.reviews[version].get("/reviews/0").json())
    assert doc["id"] == "0"
    assert doc["podname"] == f"reviews-{version}-test"
    assert doc["version"] == version
    assert [r["reviewer"] for r in doc["reviews"]] == ["Reviewer1", "Reviewer2"]
    if color is None:
        assert all("rating" not in r for r in doc["reviews"])
        assert "ratings_call" not in doc
    else:
        assert [r["rating"] for r in doc["reviews"]] == [
            {"stars": 5, "color": color},
            {"stars": 4, "color": color},
        ]
        assert doc["ratings_call"]["status"] == 200
        assert doc["ratings_call"]["podname"] == "ratings-v1-test"
        assert doc["ratings_call"]["timeout"] == timeout


def test_productpage_api(bookinfo: Bookinfo) -> None:
    pp = bookinfo.productpage["v3"]
    products = pp.get("/api/v1/products")
    assert products.status == 200
    assert [p["title"] for p in products.json()] == ["The Comedy of Errors"]  # type: ignore[attr-defined]
    details = as_dict(pp.get("/api/v1/products/0").json())
    assert details["author"] == "William Shakespeare" and details["ISBN-13"] == "123-1234567890"
    assert as_dict(pp.get("/api/v1/products/0/reviews").json())["version"] == "v3"
    assert as_dict(pp.get("/api/v1/products/0/ratings").json())["ratings"] == {"Reviewer1": 5, "Reviewer2": 4}
    bad = pp.get("/api/v1/products/abc")
    assert bad.status == 400  # details' status is passed on, with productpage's error text
    assert as_dict(bad.json()) == {"error": DETAILS_ERROR}
    assert pp.get("/api/v1/products/0/nothing").status == 404


def test_index_health_static_and_unknown_paths(bookinfo: Bookinfo) -> None:
    pp = bookinfo.productpage["v1"]
    index = pp.get("/").text
    assert "productpage?u=normal" in index
    # The faithful defaults: details 3 s once, reviews 3 s twice, ratings 3 s once.
    rows = re.findall(r'data-service="(\w+)".*?class="timeout">([\d.]+)<.*?class="attempts">(\d+)<', index)
    assert rows == [("details", "3", "1"), ("reviews", "3", "2"), ("ratings", "3", "1")]
    assert pp.get("/health").text == "Product page is healthy"
    css = pp.get("/static/bookinfo.css")
    assert css.status == 200 and css.headers["Content-Type"] == "text/css"
    assert pp.get("/static/missing.js").status == 404
    assert pp.get("/nowhere").status == 404
    assert as_dict(bookinfo.details.get("/health").json()) == {"status": "Details is healthy"}
    assert as_dict(bookinfo.reviews["v2"].get("/health").json()) == {"status": "Reviews is healthy"}
    assert as_dict(bookinfo.ratings.get("/health").json()) == {"status": "Ratings is healthy"}


def test_details_and_ratings_reject_non_numeric_ids(bookinfo: Bookinfo) -> None:
    assert bookinfo.details.get("/details/x").status == 400
    assert bookinfo.ratings.get("/ratings/x").status == 400
    assert bookinfo.reviews["v1"].get("/reviews/x").status == 400
    assert as_dict(bookinfo.details.get("/details/7").json())["id"] == 7


def test_every_request_is_one_log_line(bookinfo: Bookinfo) -> None:
    bookinfo.productpage["v2"].get("/productpage", headers={"x-request-id": "log-line-check"})
    for app in (bookinfo.productpage["v2"], bookinfo.details, bookinfo.reviews["v2"], bookinfo.ratings):
        lines = [line for line in app.wait_for_log("log-line-check").splitlines() if "log-line-check" in line]
        assert len(lines) == 1, app.log()
        assert '"GET /' in lines[0] and " 200 " in lines[0]


# ---------------------------------------------------------------------------------------------
# Login and header propagation


def test_login_sends_end_user_to_reviews_and_ratings(bookinfo: Bookinfo) -> None:
    pp = bookinfo.productpage["v2"]
    login = pp.get(
        "/login",
        method="POST",
        body=b"username=jason&passwd=secret",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": "http://gw/productpage"},
    )
    assert login.status == 302
    assert login.headers["Location"] == "http://gw/productpage"
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("user=jason")
    session = {"Cookie": cookie.split(";")[0]}

    page = pp.get("/productpage", headers=session).text
    assert '<span class="user">jason</span>' in page
    reviews = as_dict(pp.get("/api/v1/products/0/reviews", headers=session).json())
    assert reviews["headers"]["end-user"] == "jason"
    assert reviews["ratings_call"]["headers"]["end-user"] == "jason"
    details = as_dict(pp.get("/api/v1/products/0", headers=session).json())
    assert details["headers"]["end-user"] == "jason"

    logout = pp.get("/logout", headers=session)
    assert logout.status == 302
    assert "Max-Age=0" in logout.headers["Set-Cookie"]
    anonymous = as_dict(pp.get("/api/v1/products/0/reviews").json())
    assert "end-user" not in anonymous["headers"]
    assert 'name="login_form"' in pp.get("/productpage").text


def test_login_without_referer_redirects_to_the_page(bookinfo: Bookinfo) -> None:
    login = bookinfo.productpage["v1"].get(
        "/login",
        method="POST",
        body=b"username=alice",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status == 302 and login.headers["Location"] == "productpage"
    assert bookinfo.productpage["v1"].get("/login").status == 405


def test_tracing_headers_are_propagated_through_every_hop(bookinfo: Bookinfo) -> None:
    pp = bookinfo.productpage["v3"]
    sent = {**TRACE_HEADERS, "end-user": "jason"}
    reviews = as_dict(pp.get("/api/v1/products/0/reviews", headers=sent).json())
    assert reviews["headers"] == sent
    assert reviews["ratings_call"]["headers"] == sent
    details = as_dict(pp.get("/api/v1/products/0", headers=sent).json())
    assert details["headers"] == sent


def test_productpage_page_propagates_request_id_and_b3(bookinfo: Bookinfo) -> None:
    """The HTML page path forwards like the API: the access logs of every hop show the ids."""
    sent = {
        **TRACE_HEADERS,
        "x-request-id": "page-path-1",
        "x-b3-traceid": "0af7651916cd43dd8448eb211c80319c",
    }
    bookinfo.productpage["v2"].get("/productpage", headers=sent)
    for app in (bookinfo.details, bookinfo.reviews["v2"], bookinfo.ratings):
        log = app.wait_for_log("page-path-1")
        assert f"x-request-id=page-path-1 x-b3-traceid={sent['x-b3-traceid']}" in log, app.name


def test_headers_not_in_the_list_are_not_forwarded(bookinfo: Bookinfo) -> None:
    reviews = as_dict(
        bookinfo.productpage["v2"].get("/api/v1/products/0/reviews", headers={"x-secret": "no"}).json()
    )
    assert "x-secret" not in reviews["headers"]


# ---------------------------------------------------------------------------------------------
# Failures


def test_unreachable_services_give_the_error_texts(launcher: Launcher, refusing_port: RefusingPort) -> None:
    pp = launcher.start(
        BOOKINFO_APPS / "productpage.py",
        "productpage-broken",
        {**upstream_env("details", refusing_port.port), **upstream_env("reviews", refusing_port.port)},
    )
    page = pp.get("/productpage")
    assert page.status == 200
    assert "Error fetching product details" in page.text and DETAILS_ERROR in page.text
    assert "Error fetching product reviews" in page.text and REVIEWS_ERROR in page.text
    api = pp.get("/api/v1/products/0/reviews")
    assert api.status == 500 and as_dict(api.json()) == {"error": REVIEWS_ERROR}


def test_reviews_error_status_is_passed_on_after_two_tries(launcher: Launcher) -> None:
    reviews = launcher.start(BOOKINFO_APPS / "reviews.py", "reviews-failing", {"FAIL_RATE": "1"})
    pp = launcher.start(BOOKINFO_APPS / "productpage.py", "productpage-f", upstream_env("reviews", reviews))
    api = pp.get("/api/v1/products/0/reviews")
    assert api.status == 503
    assert as_dict(api.json()) == {"error": REVIEWS_ERROR}
    log = reviews.wait_for_log('"GET /reviews/0" 503', count=2)
    assert log.count('"GET /reviews/0" 503') == 2  # the original's retry


def test_hanging_reviews_times_out_twice(launcher: Launcher, hanging_server: HangingServer) -> None:
    pp = launcher.start(
        BOOKINFO_APPS / "productpage.py",
        "productpage-timeout",
        {**upstream_env("reviews", hanging_server.port), "REVIEWS_TIMEOUT": "0.3"},
    )
    page = pp.get("/productpage")
    assert REVIEWS_ERROR in page.text
    assert len(hanging_server.accepted) == 2


@pytest.mark.slow
def test_hanging_reviews_with_default_timeouts(launcher: Launcher, hanging_server: HangingServer) -> None:
    """Faithful defaults: two 3 s tries, so the error text comes after about 6 s (not 3, not 10)."""
    pp = launcher.start(
        BOOKINFO_APPS / "productpage.py", "productpage-6s", upstream_env("reviews", hanging_server.port)
    )
    began = time.monotonic()
    page = pp.get("/productpage", timeout=20)
    elapsed = time.monotonic() - began
    assert REVIEWS_ERROR in page.text
    assert len(hanging_server.accepted) == 2
    assert elapsed >= 6.0  # a lower bound only: the two timeouts cannot fire earlier


def test_ratings_failure_shows_ratings_unavailable(launcher: Launcher) -> None:
    ratings = launcher.start(
        BOOKINFO_APPS / "ratings.py", "ratings-aborting", {"FAIL_RATE": "1", "FAIL_STATUS": "500"}
    )
    reviews = launcher.start(
        BOOKINFO_APPS / "reviews.py",
        "reviews-v3-r",
        {"SERVICE_VERSION": "v3", **upstream_env("ratings", ratings)},
    )
    doc = as_dict(reviews.get("/reviews/0").json())
    assert [r["rating"] for r in doc["reviews"]] == [{"error": RATINGS_ERROR}] * 2
    assert doc["ratings_call"]["status"] == 500
    pp = launcher.start(BOOKINFO_APPS / "productpage.py", "productpage-r", upstream_env("reviews", reviews))
    page = pp.get("/productpage").text
    assert page.count(RATINGS_ERROR) == 2
    assert star_spans(page) == []


def test_hanging_ratings_respects_the_ratings_timeout(
    launcher: Launcher, hanging_server: HangingServer
) -> None:
    reviews = launcher.start(
        BOOKINFO_APPS / "reviews.py",
        "reviews-v2-h",
        {"SERVICE_VERSION": "v2", "RATINGS_TIMEOUT": "0.2", **upstream_env("ratings", hanging_server.port)},
    )
    doc = as_dict(reviews.get("/reviews/0").json())
    assert [r["rating"] for r in doc["reviews"]] == [{"error": RATINGS_ERROR}] * 2
    assert doc["ratings_call"]["status"] is None and "timed out" in doc["ratings_call"]["error"]


# ---------------------------------------------------------------------------------------------
# The fault knob


def test_fault_knob_at_run_time(launcher: Launcher) -> None:
    ratings = launcher.start(BOOKINFO_APPS / "ratings.py", "ratings-knob")
    assert as_dict(ratings.get("/fault").json()) == {
        "fail_rate": 0.0,
        "fail_status": 503,
        "response_delay": 0.0,
    }
    set_half = ratings.get("/fault?fail_rate=0.5", method="POST")
    assert as_dict(set_half.json())["fail_rate"] == 0.5
    assert [ratings.get("/ratings/0").status for _ in range(4)] == [200, 503, 200, 503]
    assert ratings.get("/health").status == 200
    form = ratings.get(
        "/fault",
        method="POST",
        body=b"fail_rate=1&fail_status=502",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert as_dict(form.json())["fail_status"] == 502
    assert ratings.get("/ratings/0").status == 502
    assert ratings.get("/fault?fail_rate=2", method="POST").status == 400
    assert ratings.get("/fault", method="DELETE").status == 200
    assert [ratings.get("/ratings/0").status for _ in range(3)] == [200, 200, 200]


def test_fault_knob_from_env(launcher: Launcher) -> None:
    details = launcher.start(
        BOOKINFO_APPS / "details.py", "details-env", {"FAIL_RATE": "1", "FAIL_STATUS": "500"}
    )
    failed = details.get("/details/0")
    assert failed.status == 500
    assert "details-env" in as_dict(failed.json())["error"]
    assert details.get("/health").status == 200


def test_bad_fault_env_is_a_clear_startup_error(launcher: Launcher) -> None:
    with pytest.raises(AssertionError, match="FAIL_RATE='lots' is not a number"):
        launcher.start(BOOKINFO_APPS / "details.py", "details-bad-env", {"FAIL_RATE": "lots"})


def test_ratings_post_stores_ratings(launcher: Launcher) -> None:
    ratings = launcher.start(BOOKINFO_APPS / "ratings.py", "ratings-post")
    stored = ratings.get("/ratings/3", method="POST", body=b'{"Reviewer1": 1, "Reviewer2": 2}')
    assert as_dict(stored.json())["ratings"] == {"Reviewer1": 1, "Reviewer2": 2}
    assert as_dict(ratings.get("/ratings/3").json())["ratings"] == {"Reviewer1": 1, "Reviewer2": 2}
    assert as_dict(ratings.get("/ratings/0").json())["ratings"] == {"Reviewer1": 5, "Reviewer2": 4}
    assert ratings.get("/ratings/3", method="POST", body=b"[1]").status == 400


def test_apps_serve_keep_alive_connections(bookinfo: Bookinfo) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", bookinfo.details.port, timeout=5)
    try:
        conn.request("GET", "/details/0")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/details/1")
        second = conn.getresponse()
        second.read()
        assert first.status == second.status == 200
        assert conn.sock is sock and sock is not None  # the same TCP connection served both
    finally:
        conn.close()
