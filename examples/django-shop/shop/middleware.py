"""What the Python shop does for every request, as one middleware."""
from django.http import HttpResponse

MAX_BODY = 65536  # bytes: a notification is far smaller (Caddy itself takes at most 64 KiB)


def shop_middleware(get_response):
    def middleware(request):
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return HttpResponse("bad Content-Length\n", status=400, content_type="text/plain")
        if size > MAX_BODY:
            return HttpResponse("too large\n", status=413, content_type="text/plain")
        response = get_response(request)
        response.setdefault("Cache-Control", "no-store")  # pay links and order states are never cached
        if request.method == "HEAD" and not response.streaming:
            # wsgiref, unlike a production server, would send the body of a HEAD.
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        return response

    return middleware
