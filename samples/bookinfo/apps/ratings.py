"""Bookinfo `ratings`: star ratings per reviewer, like Istio's Node.js ratings service (v1, in memory).

    GET  /ratings/<id>  -> {"id", "ratings": {"Reviewer1": 5, "Reviewer2": 4}, "podname", "version",
                            "headers"}                      (400 for a non-numeric id)
    POST /ratings/<id>  with a JSON object body: stores it as that product's ratings, answers as GET
    GET  /health        -> {"status": "Ratings is healthy"}

`podname`, `version` and `headers` (the propagated headers as received) are ours, for tests.
Run: ``python3 ratings.py [PORT]``; env SERVICE_VERSION (default v1).
"""

from __future__ import annotations

import json
import os
import sys
import threading

from bookinfo_common import App, Request, Response, json_response, pod_name, run

VERSION = os.environ.get("SERVICE_VERSION") or "v1"
DEFAULT_RATINGS = {"Reviewer1": 5, "Reviewer2": 4}

_lock = threading.Lock()
_user_ratings: dict[int, dict[str, object]] = {}


def ratings_for(product_id: int) -> dict[str, object]:
    with _lock:
        return dict(_user_ratings.get(product_id, DEFAULT_RATINGS))


def route(req: Request) -> Response:
    parts = req.path.strip("/").split("/")
    if req.path == "/health":
        return json_response({"status": "Ratings is healthy"})
    if parts[0] != "ratings" or len(parts) != 2:
        return json_response({"error": f"no route for {req.method} {req.path}"}, 404)
    try:
        product_id = int(parts[1])
    except ValueError:
        return json_response({"error": "please provide numeric product ID"}, 400)
    if req.method == "POST":
        try:
            posted = json.loads(req.body)
        except ValueError:
            posted = None
        if not isinstance(posted, dict):
            return json_response({"error": "please provide valid ratings JSON"}, 400)
        with _lock:
            _user_ratings[product_id] = posted
    elif req.method not in ("GET", "HEAD"):
        return json_response({"error": "use GET or POST"}, 405)
    return json_response(
        {
            "id": product_id,
            "ratings": ratings_for(product_id),
            "podname": pod_name(),
            "version": VERSION,
            "headers": req.propagated(),
        }
    )


def main() -> None:
    run(App("ratings", VERSION, route), sys.argv)


if __name__ == "__main__":
    main()
