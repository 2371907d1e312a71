# A small but realistic app for the per-interpreter memory figure: it imports what a typical
# web app pulls in from the standard library before serving.
import json, decimal, datetime, email.message, urllib.parse, logging, re, uuid, base64, hmac


def application(environ, start_response):
    body = json.dumps({"group": environ["mod_wsgi.application_group"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
