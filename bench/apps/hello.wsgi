# hello: a 12-byte body, the same bytes as the static target's hello.txt.
BODY = b"Hello world\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
