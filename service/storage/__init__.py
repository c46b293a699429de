"""Every filesystem decision and every storage call: the catalog (which names, what lies
inside the root, the one open + fstat), the calls that must not wait on the event loop
(I/O threads, ``RWF_NOWAIT`` reads, ``openat2``), what each mount can do, and how a
storage fault is reported."""
