"""QR codes: decoding photos (`preprocess`, `decode`, `pool`), reading payloads (`payload`),
drawing our own (`encode`), and the HTTP handlers (`views`)."""
