"""Lookups over HTTP: a request's parameters read into a `LookupQuery` (`query`), the
verification core every lookup endpoint shares (`verification`: budgets, the lookup path,
tenancy, audit), the lookup and original-document views (`views`), batches (`batch`) and
the callback URL a lookup may leave (`callback_url`). The domain below is
`fallback.lookup`."""
