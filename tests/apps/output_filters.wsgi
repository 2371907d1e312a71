# Responses that go through Apache's content filters (mod_include, mod_ratelimit,
# mod_deflate, mod_substitute), chosen by PATH_INFO:
#   /outer?inner=URL      a page whose SSI directive includes URL (another WSGI request)
#   /outer-write?inner=URL  the same through write(), then the request data seen afterwards
#   /inner                a small body naming the interpreter that served it
#   /big?kib=N            N KiB in one list element (written with the fast path)
#   /write?kib=N          N KiB through the write() callable, then the end
#   /line?kib=N           one line of N KiB without a newline


def interp_name(environ):
    return environ.get('mod_wsgi.application_group') or '%{GLOBAL}'


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    query = dict(p.split('=', 1) for p in environ.get('QUERY_STRING', '').split('&') if '=' in p)
    kib = int(query.get('kib', '1'))
    if path == '/outer':
        body = ('outer-start [<!--#include virtual="%s" -->] outer-end in %s\n'
                % (query['inner'], interp_name(environ))).encode()
        start_response('200 OK', [('Content-Type', 'text/html'),
                                  ('Content-Length', str(len(body)))])
        return [body]
    if path == '/outer-write':
        import mod_wsgi
        mod_wsgi.request_data()['who'] = 'outer'
        write = start_response('200 OK', [('Content-Type', 'text/html')])
        write(('outer-start [<!--#include virtual="%s" -->] ' % query['inner']).encode())
        return [('data of %s\n' % mod_wsgi.request_data().get('who')).encode()]
    if path == '/inner':
        import mod_wsgi
        mod_wsgi.request_data()['who'] = 'inner'
        body = 'inner-body in %s' % interp_name(environ)
        if interp_name(environ) == '%{GLOBAL}':
            # C extensions using the simplified GIL API must find this thread's state.
            import ctypes
            body += ' gilstate=%d' % ctypes.pythonapi.PyGILState_Check()
        body = body.encode()
        start_response('200 OK', [('Content-Type', 'text/html')])
        return [body]
    if path == '/big':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return [b'x' * (kib * 1024)]
    if path == '/write':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        for _ in range(kib):
            write(b'w' * 1024)
        return []
    if path == '/line':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'y' * (kib * 1024)]
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'unknown path\n']
