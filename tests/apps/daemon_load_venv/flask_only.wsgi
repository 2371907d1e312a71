# Flask, served from a daemon group whose python-home is a venv holding Flask and not
# Django. GET / answers what this process sees: the framework, sys.prefix, and whether
# Django can be imported here.
import importlib.util
import os
import sys

import flask

app = flask.Flask(__name__)


@app.route('/')
def index():
    return flask.jsonify(
        framework='flask',
        version=flask.__version__,
        prefix=sys.prefix,
        other_importable=importlib.util.find_spec('django') is not None,
        pid=os.getpid(),
        process_group=flask.request.environ['mod_wsgi.process_group'],
    )


application = app
