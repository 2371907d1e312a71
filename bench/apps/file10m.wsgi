# 10m: a 10 MiB file sent through wsgi.file_wrapper (the server may use sendfile).
import os

PATH = "@DATA@/10m.bin"  # filled in by bench.py when it renders the app
SIZE = os.path.getsize(PATH)
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(SIZE))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return environ["wsgi.file_wrapper"](open(PATH, "rb"), 65536)
