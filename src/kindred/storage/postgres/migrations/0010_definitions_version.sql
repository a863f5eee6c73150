-- One counter for every kind of definition the processes keep in memory: audiences,
-- calculated attributes, Profile API credentials, outputs and connections. Every change
-- of one raises it, and each group of writes reads it inside its transaction: a process
-- whose definitions are older reloads them first, so a change made by any process is used
-- by every process from its next transaction on.
ALTER TABLE calculated_version RENAME TO definitions_version;
