-- flat-manager check hooks (specs/flat-manager-api.md §1.3, §4.5, §6.2): one row per check hook
-- of a committed build, with the job that runs it.

CREATE TABLE checks (
  check_name text NOT NULL,
  build_id integer NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  job_id integer NOT NULL UNIQUE REFERENCES jobs (id),
  -- 0 Pending, 1 Passed, 2 PassedWithWarnings, 3 Failed, 4 ReviewRequired
  status smallint NOT NULL DEFAULT 0 CHECK (status BETWEEN 0 AND 4),
  status_reason text,
  results text,
  PRIMARY KEY (build_id, check_name)
);
