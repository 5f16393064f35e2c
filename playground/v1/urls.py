"""The OpenAI-compatible endpoint's routes, mounted at /v1/ (views.py here)."""

from django.urls import path

from playground.v1 import completions, files, fine_tuning, graders, responses_api, views

openai_patterns = (
    [
        path("models", views.list_models, name="models"),
        path("models/<path:model>", views.retrieve_model, name="model"),
        path("chat/completions", views.chat_completions, name="chat-completions"),
        path("completions", completions.completions, name="completions"),
        path("responses", responses_api.create, name="responses"),
        # <path:> so `/input_items` and malformed ids get the same "not stored" answer
        path("responses/<path:response_id>", responses_api.stored, name="response"),
        path("fine_tuning/alpha/graders/run", graders.run, name="graders-run"),
        path("fine_tuning/alpha/graders/validate", graders.validate, name="graders-validate"),
        path("fine_tuning/jobs", fine_tuning.jobs, name="ft-jobs"),
        # <path:> so a malformed id is "No such fine-tuning job", not an unknown URL
        path("fine_tuning/jobs/<path:job_id>/cancel", fine_tuning.cancel, name="ft-cancel"),
        path("fine_tuning/jobs/<path:job_id>/pause", fine_tuning.pause, name="ft-pause"),
        path("fine_tuning/jobs/<path:job_id>/resume", fine_tuning.resume_job, name="ft-resume"),
        path("fine_tuning/jobs/<path:job_id>/events", fine_tuning.events, name="ft-events"),
        path(
            "fine_tuning/jobs/<path:job_id>/checkpoints",
            fine_tuning.checkpoints,
            name="ft-checkpoints",
        ),
        path("fine_tuning/jobs/<path:job_id>", fine_tuning.job, name="ft-job"),
        path("files", files.files, name="files"),
        # <path:> so a malformed id (`file-1/../2`) is "No such File object", not an unknown URL
        path("files/<path:file_id>/content", files.content, name="file-content"),
        path("files/<path:file_id>", files.file, name="file"),
        path("", views.unknown_url),
        path("<path:rest>", views.unknown_url, name="unknown"),
    ],
    "openai",
)
