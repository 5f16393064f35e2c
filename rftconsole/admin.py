from django.contrib import admin

from rftconsole.models import ApiKey, WorkerReport


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "lookup", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["lookup", "key_hash"]


@admin.register(WorkerReport)
class WorkerReportAdmin(admin.ModelAdmin):
    list_display = ["hostname", "queue", "torch_version", "accelerator", "reported_at"]
