from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "plugins_app.web"
    label = "web"
    verbose_name = "Web UI"

    def ready(self) -> None:
        # Failed password logins count towards the login throttle, wherever
        # they happen (the login page, the admin's); a login clears its account.
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from plugins_app.ops import login_throttle

        user_login_failed.connect(login_throttle.on_login_failed)
        user_logged_in.connect(login_throttle.on_logged_in)
