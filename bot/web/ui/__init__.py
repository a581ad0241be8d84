"""The web pages: the admin dashboard (/ui/, `dashboard.py`) and the
subscriber portal (/portal/, bot/web/portal.py), server-rendered with Jinja2,
on signed session cookies with a CSRF token in every form (`session.py`)."""
