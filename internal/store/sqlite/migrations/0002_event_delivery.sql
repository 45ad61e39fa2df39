-- What delivery needs to know about an event besides its body: where it
-- goes (the task may be gone), whether the task exits for good, and whether
-- delivery was given up after the retry window.
ALTER TABLE events ADD COLUMN final INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN callback_url TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN gave_up INTEGER NOT NULL DEFAULT 0;
