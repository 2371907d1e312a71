# Exercises the `mod_wsgi` and `apache` modules. Routes (PATH_INFO):
#   /info          attributes of both modules, request_data() and active_requests, as JSON
#   /log?token=T   LogHandler lines at every level, each carrying T
#   /metrics       process_metrics()
#   /rmetrics      request_metrics()
#   /smetrics      server_metrics() (its top-level keys)
#   /burn          some CPU work
#   /ev/...        requests recorded by an event subscriber; /ev/raise raises in the app,
#                  /ev/badcb makes a second subscriber raise; /events returns the record
#   /shutdown      subscribes a shutdown callback writing a marker into RWSGI_TEST_DATA
import json
import logging
import os
import threading

import apache
import mod_wsgi

GROUP_AT_IMPORT = mod_wsgi.application_group

recorded = []
lock = threading.Lock()


def recorder(name, **kwargs):
    env = kwargs.get('request_environ') or {}
    path = env.get('PATH_INFO', '')
    if name in ('request_started', 'request_finished') and not path.startswith('/ev/'):
        return
    entry = {
        'name': name,
        'keys': sorted(kwargs),
        'request_id': kwargs.get('request_id'),
        'path': path,
        'data_id': id(kwargs.get('request_data')),
    }
    if name == 'request_started':
        entry['request_start'] = kwargs['request_start']
        entry['application_start'] = kwargs['application_start']
        entry['app_is_callable'] = callable(kwargs['application_object'])
        kwargs['request_data']['seen_started'] = True
    elif name == 'response_started':
        entry['status'] = kwargs['response_status']
    elif name == 'request_finished':
        entry['output_length'] = kwargs['output_length']
        entry['output_writes'] = kwargs['output_writes']
        entry['input_length'] = kwargs['input_length']
        entry['application_time'] = kwargs['application_time']
        entry['seen_started'] = kwargs['request_data'].get('seen_started', False)
    elif name == 'request_exception':
        entry['exc_type'] = kwargs['exception_info'][0].__name__
    with lock:
        recorded.append(entry)


def failing(name, **kwargs):
    env = kwargs.get('request_environ') or {}
    if name == 'request_started' and env.get('PATH_INFO') == '/ev/badcb':
        raise ValueError('callback failure on purpose')


mod_wsgi.subscribe_events(recorder)
mod_wsgi.subscribe_events(failing)

shutdown_subscribed = []


def on_shutdown(name, **kwargs):
    group = mod_wsgi.application_group or 'GLOBAL'
    safe = ''.join(c if c.isalnum() else '_' for c in group)
    path = os.path.join(shutdown_subscribed[0], 'shutdown-%s-%d' % (safe, os.getpid()))
    with open(path, 'w') as f:
        json.dump({'name': name, 'kwargs': sorted(kwargs),
                   'active': len(mod_wsgi.active_requests)}, f)


def body(start_response, doc, status='200 OK'):
    data = json.dumps(doc, sort_keys=True).encode('utf-8')
    start_response(status, [('Content-Type', 'application/json'),
                            ('Content-Length', str(len(data)))])
    return [data]


def info(environ):
    rid = environ['mod_wsgi.request_id']
    data = mod_wsgi.request_data()
    keys_at_start = sorted(data)
    data['marker'] = rid
    return {
        'version': list(mod_wsgi.version),
        'mod_rwsgi_version': list(mod_wsgi.mod_rwsgi_version),
        'environ_version': list(environ['mod_wsgi.version']),
        'process_group': mod_wsgi.process_group,
        'application_group': mod_wsgi.application_group,
        'group_at_import': GROUP_AT_IMPORT,
        'environ_group': environ['mod_wsgi.application_group'],
        'maximum_processes': mod_wsgi.maximum_processes,
        'threads_per_process': mod_wsgi.threads_per_process,
        'file_wrapper_same': mod_wsgi.FileWrapper is environ['wsgi.file_wrapper'],
        'log_handler_is_handler': issubclass(mod_wsgi.LogHandler, logging.Handler),
        'request_data_same': mod_wsgi.request_data() is data,
        'request_data_keys': keys_at_start,
        'active_has_current': rid in mod_wsgi.active_requests,
        'active_is_data': mod_wsgi.active_requests.get(rid) is data,
        'request_id': rid,
        'functions': [n for n in ('subscribe_events', 'subscribe_shutdown', 'request_data',
                                  'process_metrics', 'request_metrics', 'server_metrics')
                      if callable(getattr(mod_wsgi, n, None))],
        'apache_version': list(apache.version),
        'environ_apache_version': list(environ['apache.version']),
        'mpm_name': apache.mpm_name,
        'apache_maximum_processes': apache.maximum_processes,
        'apache_threads_per_process': apache.threads_per_process,
        'description': apache.description,
        'build_date': apache.build_date,
        'pid': os.getpid(),
    }


def log_lines(token):
    logger = logging.getLogger('rwsgi.test.' + token)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = mod_wsgi.LogHandler()
    handler.setFormatter(logging.Formatter('%(levelname)s %(message)s'))
    logger.addHandler(handler)
    try:
        logger.debug('debug line %s', token)
        logger.info('info line %s', token)
        logger.warning('warning line %s', token)
        logger.error('error line %s', token)
        logger.critical('critical line %s', token)
    finally:
        logger.removeHandler(handler)


def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/info':
        return body(start_response, info(environ))
    if path == '/log':
        token = environ.get('QUERY_STRING', '').partition('=')[2]
        log_lines(token)
        return body(start_response, {'logged': token})
    if path == '/metrics':
        return body(start_response, mod_wsgi.process_metrics())
    if path == '/rmetrics':
        return body(start_response, mod_wsgi.request_metrics())
    if path == '/smetrics':
        m = mod_wsgi.server_metrics()
        return body(start_response, None if m is None else {
            'keys': sorted(m), 'pids': [p['pid'] for p in m['processes']]})
    if path == '/burn':
        n = 0
        for i in range(200000):
            n += i * i
        return body(start_response, {'n': n, 'pid': os.getpid()})
    if path == '/events':
        with lock:
            events = list(recorded)
        return body(start_response, {'events': events})
    if path == '/ev/raise':
        raise RuntimeError('app failure on purpose')
    if path.startswith('/ev/'):
        return body(start_response, {'data_id': id(mod_wsgi.request_data()),
                                      'request_id': environ['mod_wsgi.request_id']})
    if path == '/shutdown':
        if not shutdown_subscribed:
            shutdown_subscribed.append(environ['RWSGI_TEST_DATA'])
            mod_wsgi.subscribe_shutdown(on_shutdown)
        return body(start_response, {'pid': os.getpid(),
                                     'group': mod_wsgi.application_group})
    return body(start_response, {'error': 'no route'}, '404 Not Found')
