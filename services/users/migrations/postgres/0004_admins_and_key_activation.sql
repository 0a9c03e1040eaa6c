-- Admins named by the old `users.admin_emails` setting (carried over by 0002 with
-- the account's creation time as the grant's) were trusted as they were; the admin
-- role now needs a confirmed address, which they keep.
UPDATE users SET email_verified_at_ms = created_at_ms
    WHERE email_verified_at_ms IS NULL
      AND EXISTS (SELECT 1 FROM admins a
                  WHERE a.email = users.email AND a.granted_at_ms = users.created_at_ms);

-- A rotated-in key signs from this time on (NULL: from its creation): it is
-- published first, so that every instance's JWKS (and every gateway's copy) has it
-- before any token carries its kid. The key it replaces retires at the same time.
ALTER TABLE signing_keys ADD COLUMN activates_at_ms BIGINT;
