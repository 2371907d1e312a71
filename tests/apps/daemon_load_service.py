# WSGIImportScript of the threads=0 (service-script) daemon groups of
# httpd-test-conf/daemon_load_service.conf.in. Each beats: it rewrites `PREFIX-PID.beat` in the
# data dir every 0.2 s (a count), after leaving the marker `PREFIX-PID`.
# - In group 'svc' (PREFIX `service`) the beat runs in a background thread for as long as the
#   process lives, and the script returns.
# - In group 'svcloop' (PREFIX `loop`) the script never returns, as service scripts under
#   mod_wsgi often do: the beat runs in the foreground, forever.
import os
import threading
import time

import mod_wsgi

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
_pid = os.getpid()


def _write(name, text):
    path = os.path.join(_data, name)
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)


def _beat(prefix):
    n = 0
    while True:
        n += 1
        _write('%s-%d.beat' % (prefix, _pid), str(n))
        time.sleep(0.2)


if mod_wsgi.process_group == 'svcloop':
    _write('loop-%d' % _pid, 'started')
    _beat('loop')
else:
    threading.Thread(target=_beat, args=('service',), name='service-beat', daemon=True).start()
    _write('service-%d' % _pid, 'started')
