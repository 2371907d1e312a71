# Measures this Apache child's memory while wsgi.input is consumed in the way chosen by
# ?mode= (iter: iterate lines, read: one read(), readline: readline() loop), and answers with
# JSON {"pid", "length", "lines", "longest", "after"}, "after" being VmRSS in bytes once every
# line has been dropped, the request still running. The test reads the peak from outside.
import json
import os


def status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    return None


def application(environ, start_response):
    mode = environ.get('QUERY_STRING', '').partition('mode=')[2] or 'iter'
    inp = environ['wsgi.input']
    length = lines = longest = 0
    if mode == 'iter':
        for line in inp:
            lines += 1
            length += len(line)
            longest = max(longest, len(line))
            del line
    elif mode == 'read':
        data = inp.read()
        lines = 1
        length = longest = len(data)
        del data
    elif mode == 'readline':
        while True:
            line = inp.readline()
            if not line:
                break
            lines += 1
            length += len(line)
            longest = max(longest, len(line))
        del line
    else:
        raise ValueError('unknown mode %r' % mode)
    doc = {
        'pid': os.getpid(),
        'length': length,
        'lines': lines,
        'longest': longest,
        'after': status_kb('VmRSS'),
    }
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
