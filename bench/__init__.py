"""``make bench``: the download service against nginx, Werkzeug ``send_file`` and Starlette.

Run with ``python -m bench.run`` from bench/.venv (``make bench`` sets everything up);
see BENCHMARKS.md for the method, the knobs and the latest numbers.
"""
