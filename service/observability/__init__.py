"""What operators read: the JSON access log, Prometheus metrics and their multiprocess
folder, and gunicorn's own error log."""
