from __future__ import annotations

from django import forms
from django.conf import settings

from plugins_app.hosted.models import HostedCode


class CodeUploadForm(forms.Form):
    code = forms.FileField(
        label="Code",
        help_text="main.py, or a .zip with main.py and requirements.txt.",
    )
    memory_limit_mb = forms.IntegerField(
        label="Memory limit (MB)",
        min_value=64,
        max_value=16384,
        initial=512,
        help_text="Each event's handler is stopped above this; the time limit is "
        "the plugin's timeout.",
    )

    def __init__(self, *args: object, code: HostedCode | None = None, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if code is not None:
            self.fields["memory_limit_mb"].initial = code.memory_limit_mb

    def clean_code(self) -> object:
        upload = self.cleaned_data["code"]
        limit = settings.HUB_HOSTED_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {limit:,}."
            )
        return upload
