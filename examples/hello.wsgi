"""A small WSGI demo for mod_rwsgi (and mod_wsgi): served by `make serve`.

Routes:
  /         an HTML page with a few environ values
  /stream   a generator response, sent piece by piece
  /upload   a form; POST reads wsgi.input in chunks and reports the size and SHA-256
"""

import hashlib
import html
import os
import sys
import threading
import time

SHOWN_KEYS = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
    "SERVER_PORT", "REMOTE_ADDR", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "HTTP_USER_AGENT",
    "wsgi.version", "wsgi.url_scheme", "wsgi.multithread", "wsgi.multiprocess",
    "mod_wsgi.application_group", "mod_wsgi.process_group", "mod_wsgi.version",
)

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; } td { padding: .2rem .8rem; border-bottom: 1px solid #ddd; }
td:first-child { font-family: monospace; color: #555; } nav a { margin-right: 1rem; }
"""


def page(environ, title, body):
    base = html.escape(environ.get("SCRIPT_NAME", ""))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{STYLE}</style></head><body><h1>{title}</h1><nav>"
        f"<a href='{base}/'>environ</a><a href='{base}/stream'>stream</a>"
        f"<a href='{base}/upload'>upload</a></nav>{body}</body></html>"
    ).encode("utf-8")


def respond(start_response, status, body, ctype="text/html; charset=utf-8"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def index(environ, start_response):
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(repr(environ[k]))}</td></tr>"
        for k in SHOWN_KEYS if k in environ
    )
    facts = (
        f"<p>Python {html.escape(sys.version.split()[0])} ({html.escape(sys.executable)}), "
        f"pid {os.getpid()}, thread {threading.get_ident()}</p>"
    )
    return respond(start_response, "200 OK", page(environ, "Hello from WSGI", facts +
                                                   f"<table>{rows}</table>"))


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def pieces():
        for i in range(1, 6):
            yield f"piece {i} of 5 at {time.strftime('%H:%M:%S')}\n".encode()
            time.sleep(0.5)
        yield b"done\n"

    return pieces()


FORM = """
<form method="post" enctype="multipart/form-data">
  <input type="file" name="file"> <button>Upload</button>
</form>
<p>Or: <code>curl --data-binary @somefile {url}</code></p>
"""


def upload(environ, start_response):
    url = html.escape(environ.get("SCRIPT_NAME", "") + "/upload")
    if environ["REQUEST_METHOD"] != "POST":
        return respond(start_response, "200 OK",
                       page(environ, "Upload", FORM.format(url=url)))
    stream_in = environ["wsgi.input"]
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = stream_in.read(65536)
        if not chunk:
            break
        size += len(chunk)
        digest.update(chunk)
    body = (
        f"<p>Received a request body of <b>{size}</b> bytes "
        f"(Content-Type {html.escape(environ.get('CONTENT_TYPE', '-'))}).</p>"
        f"<p>SHA-256: <code>{digest.hexdigest()}</code></p>"
        "<p>For a form upload the body includes the multipart framing around the file.</p>"
    )
    if "text/html" not in environ.get("HTTP_ACCEPT", ""):
        text = f"received {size} bytes, sha256 {digest.hexdigest()}\n".encode()
        return respond(start_response, "200 OK", text, "text/plain; charset=utf-8")
    return respond(start_response, "200 OK", page(environ, "Upload", body + FORM.format(url=url)))


ROUTES = {"": index, "/": index, "/stream": stream, "/upload": upload}


def application(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        return respond(start_response, "404 Not Found", b"not found\n", "text/plain")
    return handler(environ, start_response)
