"""Bookinfo `reviews`: two book reviews, v1 without ratings, v2 with black stars, v3 with red stars.

One program for all three versions, configured like Istio's Java reviews image:

    SERVICE_VERSION  v1 | v2 | v3                      (default v1)
    ENABLE_RATINGS   true | false   (default: false for v1, true otherwise)
    STAR_COLOR       any colour      (default: red for v3, black otherwise)
    RATINGS_TIMEOUT  seconds for the ratings call (default as the original: 10 s when the stars are
                     black, 2.5 s otherwise; the Istio fault-injection task depends on these numbers)
    RATINGS_HOSTNAME / RATINGS_SERVICE_PORT / SERVICES_DOMAIN   where ratings is (default ratings:9080)
    CLUSTER_NAME     echoed as "clustername" (default "null", as the original prints an unset value)

    GET /reviews/<id> -> {"id", "podname", "clustername", "version", "reviews": [
                            {"reviewer", "text", "rating": {"stars", "color"} | {"error"}}  (rating: v2/v3)],
                          "headers": <propagated headers as received>,
                          "ratings_call": {"status", "timeout", "podname", "version", "headers",
                                           "error"}  (v2/v3)}
    GET /health       -> {"status": "Reviews is healthy"}

When ratings fails, times out or answers non-200, each rating is
``{"error": "Ratings service is currently unavailable"}``, as in the original.
`version`, `headers` and `ratings_call` are ours: tests read them to see which version answered and
that `end-user`, `x-request-id` and B3 headers reached reviews and, through it, ratings.
Run: ``python3 reviews.py [PORT]``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from bookinfo_common import (
    App,
    Request,
    Response,
    Upstream,
    env_float,
    http_get,
    json_response,
    pod_name,
    run,
)

RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays "
        "by Shakespeare.",
    ),
)


@dataclass(frozen=True)
class Settings:
    version: str
    ratings_enabled: bool
    star_color: str
    ratings_timeout: float
    ratings: Upstream
    cluster_name: str

    @classmethod
    def from_env(cls) -> Settings:
        version = os.environ.get("SERVICE_VERSION") or "v1"
        enabled_text = os.environ.get("ENABLE_RATINGS")
        enabled = version != "v1" if not enabled_text else enabled_text.strip().lower() == "true"
        color = os.environ.get("STAR_COLOR") or ("red" if version == "v3" else "black")
        # The Java original uses 10 s for black stars and 2.5 s for any other colour.
        timeout = env_float("RATINGS_TIMEOUT", 10.0 if color == "black" else 2.5)
        return cls(
            version,
            enabled,
            color,
            timeout,
            Upstream.from_env("ratings"),
            os.environ.get("CLUSTER_NAME") or "null",
        )


SETTINGS = Settings.from_env()


def fetch_ratings(product_id: int, req: Request) -> tuple[dict[str, int], dict[str, object]]:
    """Stars per reviewer (empty when ratings is unavailable) and a record of the call for tests."""
    result = http_get(SETTINGS.ratings, f"/ratings/{product_id}", req.propagated(), SETTINGS.ratings_timeout)
    call: dict[str, object] = {
        "status": result.status,
        "error": result.error,
        "timeout": SETTINGS.ratings_timeout,
    }
    if result.status != 200:
        if result.status is not None:
            call["error"] = f"HTTP {result.status}"
        print(f"reviews: ratings call failed: {call['error']}", file=sys.stderr, flush=True)
        return {}, call
    try:
        body = result.json()
    except ValueError:
        call["error"] = "ratings answered with invalid JSON"
        return {}, call
    if not isinstance(body, dict):
        return {}, call
    call.update({k: body.get(k) for k in ("podname", "version", "headers")})
    stars = body.get("ratings")
    if not isinstance(stars, dict):
        return {}, call
    return {k: v for k, v in stars.items() if isinstance(v, int)}, call


def reviews_document(product_id: int, req: Request) -> dict[str, object]:
    stars: dict[str, int] = {}
    doc: dict[str, object] = {
        "id": str(product_id),
        "podname": pod_name(),
        "clustername": SETTINGS.cluster_name,
        "version": SETTINGS.version,
    }
    if SETTINGS.ratings_enabled:
        stars, call = fetch_ratings(product_id, req)
        doc["ratings_call"] = call
    reviews = []
    for reviewer, text in REVIEWS:
        review: dict[str, object] = {"reviewer": reviewer, "text": text}
        if SETTINGS.ratings_enabled:
            if reviewer in stars:
                review["rating"] = {"stars": stars[reviewer], "color": SETTINGS.star_color}
            else:
                review["rating"] = {"error": RATINGS_UNAVAILABLE}
        reviews.append(review)
    doc["reviews"] = reviews
    doc["headers"] = req.propagated()
    return doc


def route(req: Request) -> Response:
    parts = req.path.strip("/").split("/")
    if req.path == "/health":
        return json_response({"status": "Reviews is healthy"})
    if parts[0] == "reviews" and len(parts) == 2 and req.method in ("GET", "HEAD"):
        try:
            product_id = int(parts[1])
        except ValueError:
            return json_response({"error": "please provide numeric product id"}, 400)
        return json_response(reviews_document(product_id, req))
    return json_response({"error": f"no route for {req.method} {req.path}"}, 404)


def main() -> None:
    run(App("reviews", SETTINGS.version, route), sys.argv)


if __name__ == "__main__":
    main()
