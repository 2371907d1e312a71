# Reports whether the Apache user's per-user site-packages directory is in use: the query
# string names a marker module placed there by the test.
import importlib
import json
import os
import site
import sys


def application(environ, start_response):
    name = environ.get('QUERY_STRING', '')
    try:
        importlib.import_module(name)
        imported = True
    except ImportError:
        imported = False
    user_site = site.getusersitepackages()
    doc = {
        'group': environ['mod_wsgi.application_group'],
        'enable_user_site': site.ENABLE_USER_SITE,
        'no_user_site_flag': sys.flags.no_user_site,
        'user_site': user_site,
        'user_site_on_path': user_site in sys.path,
        'home': os.path.expanduser('~'),
        'imported': imported,
    }
    body = json.dumps(doc).encode('ascii')
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
