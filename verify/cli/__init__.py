"""The command line, `invoice-verify` (`main`): a module per command group (`serve`,
`intake`, `verify_batch`, `registry`, `keys`, `journal`, `reports`, `reconcile`,
`outages`), what they share in `common`."""
