"""Real download clients (curl, wget, aria2c, axel, ffmpeg) against the real server."""
