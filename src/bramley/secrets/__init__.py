"""Secrets at rest: device secrets (Activation Lock bypass codes, FileVault PRK, unlock PIN, recovery lock
password) and other domains' keys and tokens, under envelope encryption.

Operating notes
- Master key: BRAMLEY_SECRET_KEY (base64 of 32 bytes; `bramley secrets generate-key` makes one), else
  `<data_dir>/master.key`, created 0600 on first use. A key file readable by group or others is refused, and
  `bramley serve` will not start. Several machines sharing one database must share the key: use the setting.
- `bramley secrets rotate-key` gives every tenant a new data key and re-encrypts every value in one transaction.
  With the key file it also writes a new master key (staged as master.key.new, renamed once the transaction
  commits); running servers pick it up by themselves. With BRAMLEY_SECRET_KEY it rotates the data keys only,
  unless `--new-master-key <base64>` (or `-` to read it from stdin) is given: then set BRAMLEY_SECRET_KEY to the
  new key and restart every process. Data keys are never kept after rotation, so old backups of the database
  need the master key of their day.
- Every read through the Iru secret endpoints writes an audit event (reader, kind, never the value), committed
  before the value is sent.
"""
