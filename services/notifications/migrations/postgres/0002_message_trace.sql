-- The trace of the event that queued a message, so that sending it is a span of
-- that trace (and its log lines carry the trace id).
ALTER TABLE messages ADD COLUMN traceparent TEXT;
