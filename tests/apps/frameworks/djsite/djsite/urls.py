from django.urls import path

from . import views

urlpatterns = [
    path('form/', views.form_page),
    path('submit/', views.submit),
    path('api/', views.api),
    path('upload/', views.upload),
    path('stream/', views.stream),
]
