-- Retention: the highest outbox sequence number pruned so far (a reader whose cursor
-- is below it has missed events), and the gaps consumers found that way.
CREATE TABLE outbox_pruned (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    through BIGINT  NOT NULL
);

CREATE TABLE event_gaps (
    subscription TEXT   NOT NULL,
    -- The cursor when the gap was found, and the first position still served.
    after_seq    BIGINT NOT NULL,
    through_seq  BIGINT NOT NULL,
    detected_ms  BIGINT NOT NULL,
    PRIMARY KEY (subscription, after_seq)
);
