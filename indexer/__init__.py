"""Invoice model, identity schemes, validation rules, intake and stores.

Imports only the standard library and third-party libraries (never `verify` or `fallback`).
"""
