# Reports who the request ran as and where, for the auth_scripts tests.
def _reply(environ, start_response, which):
    body = 'callable=%s user=%s group=%s' % (
        which, environ.get('REMOTE_USER', '-'),
        environ['mod_wsgi.application_group'])
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode('latin-1')]


def application(environ, start_response):
    return _reply(environ, start_response, 'application')


def other(environ, start_response):
    return _reply(environ, start_response, 'other')
