//! Events notifications consumes: each records a message to send (and the
//! recipient's address), inside the consumer's transaction.

use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL};
use emporium_contracts::events::{
    EmailVerificationRequested, OrderCancelled, OrderConfirmed, PasswordResetRequested,
    UserRegistered,
};
use emporium_events::Received;
use emporium_store::{Tx, now_ms};
use futures::future::BoxFuture;

use crate::render::{self, Rendered};

async fn record(
    tx: &mut Tx,
    id: String,
    user_id: &str,
    kind: &str,
    event_time: &str,
    m: Rendered,
) -> anyhow::Result<()> {
    let event_ms =
        time::OffsetDateTime::parse(event_time, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or_else(|_| now_ms());
    let now = now_ms();
    sqlx::query(
        "INSERT INTO messages (id, user_id, kind, subject, text_body, html_body, status, \
         next_try_ms, event_ms, created_ms, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $7, $9) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .bind(kind)
    .bind(m.subject)
    .bind(m.text)
    .bind(m.html)
    .bind(now)
    .bind(event_ms)
    // The consumer's span: sending the message continues the event's trace.
    .bind(emporium_telemetry::context::current_traceparent())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub fn user_registered(
    tx: &mut Tx,
    event: Received<UserRegistered>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let u = &event.data;
        sqlx::query(
            "INSERT INTO recipients (user_id, email, name) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, name = excluded.name",
        )
        .bind(&u.user_id)
        .bind(&u.email)
        .bind(&u.name)
        .execute(&mut **tx)
        .await?;
        let message = render::welcome(&u.name);
        record(
            tx,
            event.id.clone(),
            &u.user_id,
            "welcome",
            &event.time,
            message,
        )
        .await
    })
}

pub fn verification_requested(
    tx: &mut Tx,
    event: Received<EmailVerificationRequested>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let message = render::verify_email(&event.data.name);
        record(
            tx,
            event.id.clone(),
            &event.data.user_id,
            LINK_VERIFY_EMAIL,
            &event.time,
            message,
        )
        .await
    })
}

pub fn reset_requested(
    tx: &mut Tx,
    event: Received<PasswordResetRequested>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let message = render::password_reset(&event.data.name);
        record(
            tx,
            event.id.clone(),
            &event.data.user_id,
            LINK_PASSWORD_RESET,
            &event.time,
            message,
        )
        .await
    })
}

pub fn order_confirmed(
    tx: &mut Tx,
    event: Received<OrderConfirmed>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let message = render::confirmed(&event.data);
        record(
            tx,
            event.id.clone(),
            &event.data.user_id,
            "order_confirmed",
            &event.time,
            message,
        )
        .await
    })
}

pub fn order_cancelled(
    tx: &mut Tx,
    event: Received<OrderCancelled>,
) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let message = render::cancelled(&event.data);
        record(
            tx,
            event.id.clone(),
            &event.data.user_id,
            "order_cancelled",
            &event.time,
            message,
        )
        .await
    })
}
