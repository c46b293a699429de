"""Minimal peer applications the benchmark compares the service with."""
