# Minimal Django project for tests/frameworks.rs: no database, no templates, CSRF middleware on.
SECRET_KEY = 'rwsgi-test-not-secret-0123456789abcdefghijklmnopqrstuvwxyz'
DEBUG = False
ALLOWED_HOSTS = ['localhost', '127.0.0.1']
ROOT_URLCONF = 'djsite.urls'
INSTALLED_APPS = []
DATABASES = {}
MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
]
USE_TZ = True
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'
# Keep Django's request/security warnings (e.g. "Forbidden (CSRF token missing.)") off stderr,
# which the server logs at error level.
LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'null': {'class': 'logging.NullHandler'}},
    'loggers': {'django': {'handlers': ['null'], 'propagate': False}},
}
