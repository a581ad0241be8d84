"""`make reliability`: crash, forgery, fuzz and SSRF suites against the real service."""
