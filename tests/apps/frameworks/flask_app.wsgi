# A Flask app (Flask from the test venv selected with WSGIPythonHome; tests/frameworks.rs).
import hashlib
import sys
import time

import flask
from flask import Flask, Response, jsonify, request, session, stream_with_context

app = Flask(__name__)
app.secret_key = 'rwsgi-test-secret'


@app.get('/json')
def json_route():
    return jsonify(
        framework='flask',
        version=flask.__version__,
        prefix=sys.prefix,
        args=request.args.to_dict(),
        script_root=request.script_root,
        path=request.path,
    )


@app.post('/form')
def form():
    name = request.form.get('name', '')
    tags = request.form.getlist('tag')
    return jsonify(name=name, tags=tags, content_type=request.content_type)


@app.get('/cookie/set')
def cookie_set():
    session['visits'] = 1
    resp = jsonify(ok=True)
    resp.set_cookie('flavour', request.args.get('v', 'oatmeal'), httponly=True)
    return resp


@app.get('/cookie/get')
def cookie_get():
    session['visits'] = session.get('visits', 0) + 1
    return jsonify(flavour=request.cookies.get('flavour'), visits=session['visits'])


@app.post('/upload')
def upload():
    f = request.files['data']
    blob = f.read()
    return jsonify(
        filename=f.filename,
        mimetype=f.mimetype,
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        note=request.form.get('note'),
    )


@app.get('/stream')
def stream():
    n = int(request.args.get('n', '5'))
    pause = float(request.args.get('pause', '0'))

    @stream_with_context
    def generate():
        yield 'first %s\n' % request.args.get('tag', '-')
        if pause:
            time.sleep(pause)
        for i in range(1, n):
            yield 'line %d\n' % i

    return Response(generate(), mimetype='text/plain', headers={'X-Streamed': 'yes'})


application = app
