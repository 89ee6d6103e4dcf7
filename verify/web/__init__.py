"""Pages for people: sign-in, the phone scanner, the business desk (lookups, batches and
ledgers), the auditor's reports and the operator's status, served by the service itself
(docs/pages.md). Every page calls the engines the API calls, for the key signed in, under
the same roles, budgets, tenancy and audit trail. `verify.web.setup.setup_web` wires them.

Kept free of imports: `verify.settings` imports `verify.web.settings` from here."""
