-- When a registration was opted out (the user's STOP or an admin's opt-out):
-- set by the change to opted_out, kept while it stays so (a second STOP does
-- not move it), cleared when the user registers again. Rows opted out before
-- this migration get the time of their last change, the nearest there is.
ALTER TABLE registrations ADD COLUMN opted_out_at REAL;
    UPDATE registrations SET opted_out_at = updated_at WHERE status = 'opted_out'
