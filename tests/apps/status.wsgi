# Answers with the status the query asks for (`?status=404`), after `?sleep=<ms>`; the body is
# the serving process's pid, so a test knows which Apache child served it.
import os
import time
from urllib.parse import parse_qs

REASONS = {200: 'OK', 404: 'Not Found', 500: 'Internal Server Error', 302: 'Found'}


def application(environ, start_response):
    q = parse_qs(environ.get('QUERY_STRING', ''))
    status = int(q.get('status', ['200'])[0])
    time.sleep(int(q.get('sleep', ['0'])[0]) / 1000.0)
    body = str(os.getpid()).encode()
    start_response('%d %s' % (status, REASONS.get(status, 'Other')),
                   [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
