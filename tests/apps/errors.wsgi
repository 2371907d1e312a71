# Writes marker lines to wsgi.errors, sys.stdout (print) and sys.stderr; ?token= tags them.
import sys
import urllib.parse


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', '')))
    t = q.get('token', 'none')
    err = environ['wsgi.errors']
    err.write('wsgi.errors line %s\n' % t)
    err.writelines(['writelines one %s\n' % t, 'writelines two %s\n' % t])
    err.flush()
    print('stdout line %s' % t)
    sys.stdout.flush()
    sys.stderr.write('stderr line %s\n' % t)
    sys.stderr.flush()
    body = b'logged'
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
