from django.contrib import admin

from playground.models import Deployment, InvocationLog


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "model", "status", "log_requests", "created_at"]
    list_filter = ["status"]


@admin.register(InvocationLog)
class InvocationLogAdmin(admin.ModelAdmin):
    list_display = ["deployment", "owner", "feedback", "completion_tokens", "created_at"]
    list_filter = ["feedback"]
