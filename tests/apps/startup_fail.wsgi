# Raises at import until data/startup-ready exists: a stand-in for an app whose start-up keeps
# failing (Django with broken settings) for startup-timeout. Once loaded it answers its pid.
import json
import os

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
if not os.path.exists(os.path.join(_data, 'startup-ready')):
    raise RuntimeError('startup-ready marker missing')


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'pid': os.getpid()}).encode('ascii')]
