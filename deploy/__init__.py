"""Deployment templates for several nodes: HAProxy in front, an nginx cache tier."""
