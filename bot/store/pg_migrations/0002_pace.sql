-- One pace per gateway number across every process: the next free send slot,
-- on the database's clock (so the hosts' clocks do not matter), advanced
-- atomically by each reservation.
CREATE TABLE pace (
    instance_id INTEGER PRIMARY KEY,
    next_at DOUBLE PRECISION NOT NULL
);
