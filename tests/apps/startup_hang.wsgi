# Hangs at import until data/startup-ready exists: a stand-in for an app whose start-up waits
# for ever (a database that never answers) for startup-timeout. Once loaded it answers its pid.
import json
import os
import time

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
if not os.path.exists(os.path.join(_data, 'startup-ready')):
    time.sleep(60)


def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'pid': os.getpid()}).encode('ascii')]
