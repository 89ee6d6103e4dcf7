"""The aiohttp verification service, its CLI and settings wiring."""
