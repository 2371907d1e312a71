# WSGIAccessScript admitting only clients on 127.0.0.1.
def allow_access(environ, host):
    return host == '127.0.0.1'
