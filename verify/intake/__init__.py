"""Intake over HTTP: `POST /api/v1/packages` (`views`)."""
