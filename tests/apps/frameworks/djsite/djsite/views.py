import hashlib
import sys

import django
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.http import require_GET, require_POST


@require_GET
def form_page(request):
    token = get_token(request)
    html = (
        '<form method="post" action="%ssubmit/">'
        '<input type="hidden" name="csrfmiddlewaretoken" value="%s">'
        '<input name="name"></form>' % (request.META['SCRIPT_NAME'] + '/', token)
    )
    return HttpResponse(html)


@require_POST
def submit(request):
    return HttpResponse('thanks %s' % request.POST.get('name', ''), content_type='text/plain')


@require_GET
def api(request):
    return JsonResponse({
        'framework': 'django',
        'version': django.get_version(),
        'prefix': sys.prefix,
        'script_name': request.META.get('SCRIPT_NAME'),
        'path': request.path,
        'path_info': request.path_info,
        'q': request.GET.get('q'),
    })


@require_POST
def upload(request):
    f = request.FILES['data']
    h = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        h.update(chunk)
        size += len(chunk)
    return JsonResponse({
        'name': f.name,
        'size': size,
        'sha256': h.hexdigest(),
        'note': request.POST.get('note'),
        'handler': type(f).__name__,
    })


@require_GET
def stream(request):
    n = int(request.GET.get('n', '5'))
    resp = StreamingHttpResponse(('row %d\n' % i for i in range(n)), content_type='text/plain')
    resp['X-Streamed'] = 'yes'
    return resp
