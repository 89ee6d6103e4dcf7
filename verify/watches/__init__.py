"""Watches (docs/watches.md): a key watches invoices and is told when one changes state."""
