# WSGIAuthUserScript for mod_wsgi-express's --auth-user-script.
def check_password(environ, user, password):
    if user == 'express-user':
        return password == 'express-secret'
    return None
