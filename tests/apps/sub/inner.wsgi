def application(environ, start_response):
    body = ('inner %s|%s' % (environ['SCRIPT_NAME'], environ['PATH_INFO'])).encode('latin-1')
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]
