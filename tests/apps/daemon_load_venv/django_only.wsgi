# Django, served from a daemon group whose python-home is a venv holding Django and not
# Flask. GET / answers what this process sees: the framework, sys.prefix, and whether Flask
# can be imported here. Settings and URLs are made here, without a project.
import importlib.util
import os
import sys
import types

import django
from django.conf import settings
from django.http import JsonResponse
from django.urls import path

URLS = 'rwsgi_test_django_only_urls'

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY='rwsgi-test-only',
        ALLOWED_HOSTS=['*'],
        ROOT_URLCONF=URLS,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )


def index(request):
    return JsonResponse({
        'framework': 'django',
        'version': django.get_version(),
        'prefix': sys.prefix,
        'other_importable': importlib.util.find_spec('flask') is not None,
        'pid': os.getpid(),
        'process_group': request.META['mod_wsgi.process_group'],
    })


urls = types.ModuleType(URLS)
urls.urlpatterns = [path('', index)]
sys.modules[URLS] = urls

django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
