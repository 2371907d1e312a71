# Reads wsgi.input in the way chosen by ?mode= and answers with JSON:
# {"mode", "length", "sha256", "reads": number of read calls, "lines": [...] (small bodies only),
#  "pid", "content_length", "error"}.
# Modes: read, readn (read(n) loop, n from ?n=, default 65536), readline, readline_n (readline(n)
# with ?n=), readlines, readlines_hint, iter, cl (read(CONTENT_LENGTH)), none (don't read),
# read_after_headers (start_response + write() first, then read).
# ?token=T also writes the JSON answer to $RWSGI_TEST_DATA/input-T (for clients that went away).
import hashlib
import json
import os
import urllib.parse


def application(environ, start_response):
    q = dict(urllib.parse.parse_qsl(environ.get('QUERY_STRING', '')))
    mode = q.get('mode', 'read')
    n = int(q.get('n', '65536'))
    inp = environ['wsgi.input']
    h = hashlib.sha256()
    length = 0
    reads = 0
    lines = []
    error = None
    write = None

    def feed(data):
        nonlocal length
        h.update(data)
        length += len(data)
        if len(lines) < 200:
            lines.append(data.decode('latin-1'))

    try:
        if mode == 'read':
            data = inp.read()
            reads = 1
            feed(data)
        elif mode == 'readn':
            while True:
                data = inp.read(n)
                reads += 1
                if not data:
                    break
                assert len(data) <= n, (len(data), n)
                h.update(data)
                length += len(data)
        elif mode == 'readline':
            while True:
                line = inp.readline()
                reads += 1
                if not line:
                    break
                feed(line)
        elif mode == 'readline_n':
            while True:
                line = inp.readline(n)
                reads += 1
                if not line:
                    break
                assert len(line) <= n, (len(line), n)
                feed(line)
        elif mode == 'readlines':
            for line in inp.readlines():
                feed(line)
            reads = 1
        elif mode == 'readlines_hint':
            while True:
                got = inp.readlines(n)
                reads += 1
                if not got:
                    break
                for line in got:
                    feed(line)
        elif mode == 'iter':
            for line in inp:
                reads += 1
                feed(line)
        elif mode == 'cl':
            data = inp.read(int(environ.get('CONTENT_LENGTH') or 0))
            reads = 1
            feed(data)
        elif mode == 'none':
            pass
        elif mode == 'read_after_headers':
            write = start_response('200 OK', [('Content-Type', 'application/json')])
            write(b'{"early": true, ')
            data = inp.read()
            reads = 1
            h.update(data)
            length += len(data)
        else:
            raise ValueError('unknown mode %r' % mode)
    except Exception as e:  # report instead of failing: the test decides
        error = '%s: %s' % (type(e).__name__, e)

    doc = {
        'mode': mode,
        'length': length,
        'sha256': h.hexdigest(),
        'reads': reads,
        'lines': lines,
        'pid': os.getpid(),
        'content_length': environ.get('CONTENT_LENGTH'),
        'transfer_encoding': environ.get('HTTP_TRANSFER_ENCODING'),
        'error': error,
    }
    body = json.dumps(doc).encode('ascii')
    if q.get('token'):
        path = os.path.join(environ['RWSGI_TEST_DATA'], 'input-' + q['token'])
        with open(path + '.tmp', 'wb') as f:
            f.write(body)
        os.rename(path + '.tmp', path)
    if write is not None:
        return [body[1:]]
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
