"""Helpers shared by the test suites: a real gunicorn server, raw HTTP, tool lookup."""
