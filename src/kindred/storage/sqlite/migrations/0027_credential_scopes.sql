-- What a stored credential's tokens may do (a JSON array: "profiles", "platform"). A
-- credential stored before this column read profiles only, as its tokens still may.
ALTER TABLE api_credentials ADD COLUMN scopes TEXT NOT NULL DEFAULT '["profiles"]';
