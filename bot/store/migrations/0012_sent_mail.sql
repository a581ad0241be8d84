-- The service's mails to subscribers ([email]): one row per mail that must go
-- once (a welcome, each reminder before an end date, a change of plan), so a
-- restart or a second process never sends it again. A sender claims the row
-- first (`claimed_at`), and `sent_at` is set once the SMTP server took it. A claim
-- left by a dead process without `sent_at` may be taken again after a lease.
CREATE TABLE sent_mail (
        subscriber_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        claimed_at REAL NOT NULL,
        sent_at REAL,
        PRIMARY KEY (subscriber_id, kind)
    )
