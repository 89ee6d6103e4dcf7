"""The HTTP edge every route shares: the error type and its one translation (`errors`,
`middlewares`), JSON answers (`responses`), bounded request bodies (`body`), query
parameters (`params`), CSV cells safe for spreadsheets (`csv_cells`), the access log
(`logs`) and the OpenAPI description (`openapi`, `openapi_schemas`)."""
