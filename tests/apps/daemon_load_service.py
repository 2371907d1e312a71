# WSGIImportScript of a threads=0 (service-script) daemon group. It starts a background
# thread that rewrites `service-PID.beat` in the data dir every 0.2 s (a count) for as long
# as the process lives, leaves the marker `service-PID`, and returns.
import os
import threading
import time

_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
_pid = os.getpid()


def _write(name, text):
    path = os.path.join(_data, name)
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.rename(path + '.tmp', path)


def _beat():
    n = 0
    while True:
        n += 1
        _write('service-%d.beat' % _pid, str(n))
        time.sleep(0.2)


threading.Thread(target=_beat, name='service-beat', daemon=True).start()
_write('service-%d' % _pid, 'started')
