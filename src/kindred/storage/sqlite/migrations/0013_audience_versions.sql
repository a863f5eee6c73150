-- Every saved version of an audience's definition (BEY-3): the audience's document as it
-- was saved. Audiences saved before this table existed start with their current document
-- as version 1.
CREATE TABLE audience_versions (
    audience_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    saved_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (audience_id, version)
);

INSERT INTO audience_versions (audience_id, version, saved_ms, doc)
SELECT id, 1, COALESCE(json_extract(doc, '$.updated_ms'), 0), doc FROM audiences;
