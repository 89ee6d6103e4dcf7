"""Reports for auditors, over HTTP (`views`) and from the command line alike: the
missing-invoice report (`missing`, with its outage-gap section `outage_gaps`) and the
ledger reconciliation (`ledger`: lines read by `ledger_lines`, checked by `ledger_check`).
What every report's query shares is in `query`."""
