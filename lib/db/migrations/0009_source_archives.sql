-- Source archives for server-side builds: an artifact of kind 'source' is a tarball checked
-- only against its sha256 (it carries no ref), read by the builders of its build.
ALTER TABLE artifacts ADD COLUMN kind text NOT NULL DEFAULT 'bundle'
  CHECK (kind IN ('bundle', 'source'));
-- artifacts_check is `received` within 0..size; artifacts_check1 the completion rule replaced here.
ALTER TABLE artifacts DROP CONSTRAINT artifacts_check1;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_complete_check CHECK (
  status <> 'complete' OR
  (received = size AND (kind = 'source' OR (ref IS NOT NULL AND commit IS NOT NULL))));
ALTER TABLE source_builds ADD COLUMN source_artifact_id integer REFERENCES artifacts (id);
