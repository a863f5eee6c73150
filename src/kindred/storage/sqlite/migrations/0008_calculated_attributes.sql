-- Calculated attribute definitions (CA-1), as JSON documents.
CREATE TABLE calculated_attributes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
