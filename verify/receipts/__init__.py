"""Signed verification receipts (docs/receipts.md): an answer's facts signed as a compact
JWS with Ed25519, the keys that sign them, their rotation and publication, and the one-page
PDF of a receipt for people."""
