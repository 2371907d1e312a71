# Answers PATH_INFO /NNN with status NNN and a body of its own ("app NNN body"), so a test
# can tell the application's error page from Apache's (WSGIErrorOverride); /big404 is a 404
# with a 32 MiB body in 64 KiB pieces.
def application(environ, start_response):
    code = environ.get('PATH_INFO', '/200').strip('/') or '200'
    if code == 'big404':
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return (b'x' * 65536 for _ in range(512))
    reasons = {'200': 'OK', '401': 'Unauthorized', '404': 'Not Found',
               '500': 'Internal Server Error', '503': 'Service Unavailable'}
    body = ('app %s body' % code).encode('ascii')
    headers = [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))]
    if code == '401':
        headers.append(('WWW-Authenticate', 'Basic realm="app"'))
    start_response('%s %s' % (code, reasons.get(code, 'Other')), headers)
    return [body]
