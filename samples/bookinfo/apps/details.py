"""Bookinfo `details`: the book's publication facts, like Istio's Ruby details service.

    GET /details/<id>   -> {"id", "author", "year", "type", "pages", "publisher", "language",
                            "ISBN-10", "ISBN-13", "podname", "headers"}   (400 for a non-numeric id)
    GET /health         -> {"status": "Details is healthy"}

`podname` and `headers` (the propagated headers as received) are ours: tests read them to see which
pod answered and that `x-request-id`, B3 and `end-user` arrived. Run: ``python3 details.py [PORT]``.
"""

from __future__ import annotations

import os
import sys

from bookinfo_common import App, Request, Response, json_response, pod_name, run


def book_details(product_id: int) -> dict[str, object]:
    """The one book Bookinfo knows, under whatever numeric id is asked for (as the original)."""
    return {
        "id": product_id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }


def route(req: Request) -> Response:
    parts = req.path.strip("/").split("/")
    if req.path == "/health":
        return json_response({"status": "Details is healthy"})
    if parts[0] == "details" and req.method in ("GET", "HEAD"):
        try:
            product_id = int(parts[-1])
        except ValueError:
            return json_response({"error": "please provide numeric product id"}, 400)
        return json_response({**book_details(product_id), "podname": pod_name(), "headers": req.propagated()})
    return json_response({"error": f"no route for {req.method} {req.path}"}, 404)


def main() -> None:
    run(App("details", os.environ.get("SERVICE_VERSION") or "v1", route), sys.argv)


if __name__ == "__main__":
    main()
