"""The web pages: the admin dashboard (/ui/, `dashboard.py`) and the
subscriber portal (/portal/, bot/web/portal.py), server-rendered with Jinja2,
on signed session cookies with a CSRF token in every form (`session.py`).
Pages both have: `history.py` (messages, deliveries) and `endpoints.py`
(webhook endpoints); the dashboard's subscribers and audit log:
`subscribers.py`; a secret shown once after the form that issued it: `once.py`."""
