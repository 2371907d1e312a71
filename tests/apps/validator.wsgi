# The app wrapped in wsgiref.validate.validator: any environ/protocol violation by the server
# raises AssertionError (500 + traceback in the error log).
from wsgiref.validate import validator


def inner(environ, start_response):
    data = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    environ['wsgi.errors'].flush()
    body = b'validated ' + str(len(data)).encode('ascii')
    start_response('200 OK', [('Content-Type', 'text/plain'),
                              ('Content-Length', str(len(body)))])
    return [body]


application = validator(inner)
