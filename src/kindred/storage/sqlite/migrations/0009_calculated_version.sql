-- A counter every change of a calculated attribute definition raises, read by each group
-- of batches inside its transaction: a process whose definitions are older reloads them
-- before applying the group, so no batch committed after an activation misses it.
CREATE TABLE calculated_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO calculated_version (id, version) VALUES (1, 0);
