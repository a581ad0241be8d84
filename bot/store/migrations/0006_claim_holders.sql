-- A claim names its holder: claimed_by (a worker id) beside claimed_until
-- (the lease's end). It means something only while claimed_until is set.
-- With it a starting process can release the claims its own earlier run
-- left behind and leave other live processes' alone. On SQLite, where one
-- process serves a file, every claim found at start is a dead process's.
ALTER TABLE outbound ADD COLUMN claimed_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT
