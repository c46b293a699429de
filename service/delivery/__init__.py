"""Moving a plan's bytes: the delivery path (pread copy, sendfile, nginx offload), admission
per client, send limits, and the event-loop yields that keep connections fair."""
