# WSGIDispatchScript: the query string picks the overrides.
def process_group(environ):
    if 'daemon' in environ['QUERY_STRING']:
        return 'somedaemon'
    return None


def application_group(environ):
    if 'raise' in environ['QUERY_STRING']:
        raise KeyError('dispatch failure on purpose')
    if 'grp' in environ['QUERY_STRING']:
        return 'dispatched'
    return None


def callable_object(environ):
    if 'other' in environ['QUERY_STRING']:
        return 'other'
    return None
