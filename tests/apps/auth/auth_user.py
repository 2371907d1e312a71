# WSGIAuthUserScript for the auth_scripts tests: Basic (check_password) and Digest
# (get_realm_hash) against a fixed user table.
import hashlib

USERS = {'alice': 'secret', 'bob': 'hunter2'}
STASHED = []


def check_password(environ, user, password):
    if user == 'boom':
        raise ValueError('auth script failure on purpose')
    if user == 'envcheck':
        # The cut-down environ: credentials and per-handler keys stay out.
        return ('HTTP_AUTHORIZATION' not in environ
                and 'SCRIPT_FILENAME' not in environ
                and 'RWSGI_TEST_DATA' not in environ
                and environ['REQUEST_URI'].startswith('/basic')
                and environ['mod_wsgi.application_group'] == ''
                and environ['mod_wsgi.process_group'] == ''
                and hasattr(environ['wsgi.errors'], 'write')
                and environ['mod_ssl.is_https']() == 0
                and environ['mod_ssl.var_lookup']('HTTPS') is None)
    if user == 'stash':
        STASHED.append(environ['mod_ssl.is_https'])
        return True
    if user == 'stale':
        # A kept mod_ssl function must not outlive its request.
        try:
            STASHED[-1]()
        except RuntimeError:
            return True
        return False
    if user == 'tls':
        lookup = environ['mod_ssl.var_lookup']
        return (environ['mod_ssl.is_https']() == 1
                and lookup('HTTPS') == 'on'
                and lookup('SSL_PROTOCOL').startswith('TLS'))
    if user == 'groupcheck':
        import sys
        return (environ['mod_wsgi.application_group'] == 'auth-group'
                and sys.modules['mod_wsgi'].application_group == 'auth-group')
    if user == 'renamed':
        return 'alias-of-renamed'
    if user not in USERS:
        return None
    return USERS[user] == password


def get_realm_hash(environ, user, realm):
    if user not in USERS:
        return None
    text = '%s:%s:%s' % (user, realm, USERS[user])
    return hashlib.md5(text.encode('utf-8')).hexdigest()
