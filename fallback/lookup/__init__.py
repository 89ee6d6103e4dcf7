"""The lookup path's domain, below the HTTP layer: what a lookup asks (`query`), how it
becomes a store read (`fetch`), the verification answer (`answer`), where it is answered
from and what a miss means (`resilience`), and the answers the reconciler gives gaps
(`gap_answers`). `verify` reads requests into these types and answers with them."""
