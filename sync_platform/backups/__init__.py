"""Backups of the warehouse: dump, encrypt, store, verify by restoring, prune, restore.

Plain code without Dagster (the jobs in defs/ops/backups.py and the CLI call it):
- `dump`: a consistent dump (pg_dump custom format on an exported snapshot; SQLite's online
  backup API) plus per-table row counts and content checksums of the same snapshot;
- `crypto`: age encryption (pyrage), streaming, decrypted to a temp path renamed only once
  authenticated;
- `storage`: where backup files live (a local directory; atomic temp + rename);
- `manifest`: what a backup holds, beside it in storage and in the `backups` table;
- `restore`: restore into a target database and prove it matches the manifest;
- `retention`: which backups to keep (daily / weekly / monthly, newest verified always);
- `service`: the operations (create, verify, restore, drill, prune, list) over all of them.
"""
