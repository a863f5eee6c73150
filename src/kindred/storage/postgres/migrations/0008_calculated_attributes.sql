-- Calculated attribute definitions (CA-1), as JSON documents.
CREATE TABLE calculated_attributes (
    id BIGSERIAL PRIMARY KEY,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
