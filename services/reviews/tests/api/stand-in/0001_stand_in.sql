-- The stand-in producers keep nothing of their own.
CREATE TABLE stand_in (id BIGINT PRIMARY KEY);
