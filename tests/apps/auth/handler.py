# WSGIHandlerScript target: every request its handler is set for comes here.
def handle_request(environ, start_response):
    body = 'handler_script=%s group=%s file=%s' % (
        environ['mod_wsgi.handler_script'],
        environ['mod_wsgi.application_group'],
        environ['SCRIPT_FILENAME'])
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode('latin-1')]
