# Writes ?kib= KiB of '\r'-separated progress updates, never a newline, to ?stream= (errors:
# wsgi.errors, stdout: print(end=''), stderr: sys.stderr), then waits up to 10 s for
# $RWSGI_TEST_DATA/go-<token> before answering, so the test can look at the log while the
# request still runs.
import os
import sys
import time
import urllib.parse


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', '')))
    t = q['token']
    stream = q.get('stream', 'errors')
    total = int(q.get('kib', '64')) * 1024
    written = 0
    i = 0
    while written < total:
        update = '\rprogress %s %06d' % (t, i)
        if stream == 'errors':
            environ['wsgi.errors'].write(update)
        elif stream == 'stdout':
            print(update, end='')
        else:
            sys.stderr.write(update)
        written += len(update)
        i += 1
    go = os.path.join(environ['RWSGI_TEST_DATA'], 'go-' + t)
    deadline = time.time() + 10
    while not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.05)
    body = b'done'
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
