"""Who may do what: API keys and roles, tenancy, rate limits and the audit trail."""
