# WSGIAuthGroupScript for the auth_scripts tests.
GROUPS = {'alice': ['staff', 'editors'], 'bob': ['readers']}


def groups_for_user(environ, user):
    return GROUPS.get(user, [])
