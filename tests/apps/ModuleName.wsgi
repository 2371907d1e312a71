# Reports the name the module gave this script's module, and the names mod_wsgi's rule
# (`_mod_wsgi_` + md5 of the script path, lower-cased first when case-insensitive) gives,
# computed here with Python's own hashlib.
import hashlib
import json


def _name(path):
    return '_mod_wsgi_' + hashlib.md5(path.encode('utf-8')).hexdigest()


def application(environ, start_response):
    body = json.dumps({
        'name': __name__,
        'file': __file__,
        'as_is': _name(__file__),
        'lowered': _name(__file__.lower()),
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
