//! Sending recorded messages: SMTP or `.eml` files, retried until delivered.
//!
//! Woken after every consumed event commits (and once a second regardless), the loop
//! sends each pending message whose recipient is known. A message is marked sent
//! only after the server accepted it (or the file is in place); a failure is retried
//! with exponential backoff. Each message has a stable `Message-ID` and file name
//! (`<id>.eml`), so a crash between sending and marking at worst repeats a send a
//! receiver can recognise as the same message.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emporium_store::{Db, now_ms};
use emporium_telemetry::metrics::counter;
use emporium_telemetry::trace::{self, Kind, Span};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{Notify, watch};

use crate::links::{self, LinkError, Links};
use crate::{NotificationsSettings, SmtpSettings};

/// Where mail goes.
pub enum Mailer {
    Files(PathBuf),
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        server: String,
    },
}

impl Mailer {
    pub fn new(settings: &NotificationsSettings, mail_dir: PathBuf) -> anyhow::Result<Self> {
        settings
            .from
            .parse::<Mailbox>()
            .with_context(|| format!("notifications.from `{}` is not a mailbox", settings.from))?;
        let Some(smtp) = &settings.smtp else {
            std::fs::create_dir_all(&mail_dir)
                .with_context(|| format!("creating {}", mail_dir.display()))?;
            tracing::info!(dir = %mail_dir.display(), "mail is written as .eml files");
            return Ok(Self::Files(mail_dir));
        };
        let transport = smtp_transport(smtp)?;
        let server = format!("{}:{}", smtp.host, smtp.port);
        tracing::info!(%server, tls = %smtp.tls, "mail is sent through SMTP");
        Ok(Self::Smtp { transport, server })
    }

    async fn send(&self, id: &str, message: Message) -> Result<(), SendError> {
        match self {
            Self::Files(dir) => {
                let tmp = dir.join(format!(".{id}.eml.tmp"));
                let to = dir.join(format!("{id}.eml"));
                let formatted = message.formatted();
                // Both on one blocking thread: one hand-off instead of two.
                let write = tokio::task::spawn_blocking(move || {
                    std::fs::write(&tmp, formatted)?;
                    std::fs::rename(&tmp, to)
                });
                match write.await {
                    Ok(written) => written,
                    Err(e) => Err(std::io::Error::other(e)),
                }
                .map_err(|e| SendError::Transient(format!("writing {}: {e}", dir.display())))
            }
            Self::Smtp { transport, server } => match transport.send(message).await {
                Ok(_) => Ok(()),
                Err(e) if refuses_recipient(&e) => {
                    Err(SendError::Permanent(format!("SMTP {server}: {e}")))
                }
                Err(e) => Err(SendError::Transient(format!("SMTP {server}: {e}"))),
            },
        }
    }
}

fn smtp_transport(s: &SmtpSettings) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match s.tls.as_str() {
        "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)?,
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)?,
        other => anyhow::bail!("notifications.smtp.tls: `{other}` is not none, starttls or tls"),
    };
    let mut builder = builder
        .port(s.port)
        .timeout(Some(Duration::from_millis(s.timeout_ms)));
    if let (Some(user), Some(password)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
    }
    Ok(builder.build())
}

#[derive(Clone, sqlx::FromRow)]
struct Due {
    id: String,
    user_id: String,
    kind: String,
    subject: String,
    text_body: String,
    html_body: String,
    attempts: i64,
    email: String,
    name: String,
    traceparent: Option<String>,
}

/// True when the server refused this recipient for good (550, 551, 553). Other
/// permanent replies (authentication, TLS required, policy) concern the server or our
/// account, not the message: they are retried until someone fixes the setup.
fn refuses_recipient(e: &lettre::transport::smtp::Error) -> bool {
    e.is_permanent()
        && e.status()
            .is_some_and(|code| matches!(code.to_string().as_str(), "550" | "551" | "553"))
}

/// Why a message was not delivered.
#[derive(Debug)]
enum SendError {
    /// Trying again will not help (a malformed address, a 5xx from the server).
    Permanent(String),
    Transient(String),
    /// Not needed any more (a link to confirm an address confirmed meanwhile).
    Moot(String),
}

/// Sends due messages until `stop`.
pub async fn run(
    db: Db,
    mailer: Mailer,
    links: Links,
    settings: NotificationsSettings,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let from: Mailbox = match settings.from.parse() {
        Ok(from) => from,
        Err(_) => return,
    };
    loop {
        let full = match deliver_due(&db, &mailer, &links, &from, &settings, &stop).await {
            Ok(n) => n == BATCH && !*stop.borrow(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read pending messages");
                false
            }
        };
        if full {
            continue;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

const BATCH: usize = 100;

async fn deliver_due(
    db: &Db,
    mailer: &Mailer,
    links: &Links,
    from: &Mailbox,
    settings: &NotificationsSettings,
    stop: &watch::Receiver<bool>,
) -> Result<usize, sqlx::Error> {
    let due: Vec<Due> = sqlx::query_as(
        "SELECT m.id, m.user_id, m.kind, m.subject, m.text_body, m.html_body, m.attempts, \
         r.email, r.name, m.traceparent \
         FROM messages m JOIN recipients r ON r.user_id = m.user_id \
         WHERE m.status = 'pending' AND m.next_try_ms <= $1 ORDER BY m.created_ms LIMIT $2",
    )
    .bind(now_ms())
    .bind(BATCH as i64)
    .fetch_all(db.pool())
    .await?;
    let n = due.len();
    let claim_ms = claim_period(settings).as_millis() as i64;
    for mut m in due {
        if *stop.borrow() {
            break;
        }
        // Several instances may share the database: claim the message before sending
        // it, by moving its next try past the longest a send can take. Only the
        // instance whose claim changed the row sends; the others skip it, and should
        // this one die mid-send the message is due again when the claim runs out.
        // (`attempts` is read again: another instance may have tried it meanwhile.)
        let now = now_ms();
        let claimed_until = now + claim_ms;
        let claimed: Option<(i64,)> = sqlx::query_as(
            "UPDATE messages SET next_try_ms = $1 \
             WHERE id = $2 AND status = 'pending' AND next_try_ms <= $3 RETURNING attempts",
        )
        .bind(claimed_until)
        .bind(&m.id)
        .bind(now)
        .fetch_optional(db.pool())
        .await?;
        let Some((attempts,)) = claimed else {
            continue;
        };
        m.attempts = attempts;
        // A span of the trace of the event that queued the message, if it had one.
        let mut span = m
            .traceparent
            .as_deref()
            .and_then(trace::parse_traceparent)
            .map(|parent| {
                let mut span = Span::start("send mail", Kind::Client, Some(&parent));
                span.set_attribute("emporium.message_id", m.id.clone());
                span.set_attribute("emporium.attempt", attempts + 1);
                span
            });
        let (trace_id, span_id) = (
            span.as_ref().map(|s| s.trace_id()),
            span.as_ref().map(|s| s.span_id()),
        );
        let (trace_id, span_id) = (trace_id.as_deref(), span_id.as_deref());
        let mut stopping = stop.clone();
        let sent = tokio::select! {
            sent = deliver(mailer, from, links, &m) => sent,
            _ = stopping.changed() => {
                // Shutting down: the message stays pending, and is due again at once
                // (for the next start or another instance) unless it changed since.
                sqlx::query(
                    "UPDATE messages SET next_try_ms = $1 \
                     WHERE id = $2 AND status = 'pending' AND next_try_ms = $3",
                )
                .bind(now_ms())
                .bind(&m.id)
                .bind(claimed_until)
                .execute(db.pool())
                .await?;
                break;
            }
        };
        match sent {
            Ok(()) => {
                sqlx::query(
                    "UPDATE messages SET status = 'sent', sent_ms = $2, attempts = attempts + 1, \
                     last_error = NULL WHERE id = $1",
                )
                .bind(&m.id)
                .bind(now_ms())
                .execute(db.pool())
                .await?;
                counter!("emporium_mails_sent_total").increment(1);
                tracing::info!(message_id = %m.id, trace_id, span_id, "mail sent");
            }
            Err(SendError::Permanent(error)) => {
                counter!("emporium_mail_failures_total", "kind" => "permanent").increment(1);
                if let Some(span) = &mut span {
                    span.set_error(error.clone());
                }
                tracing::error!(message_id = %m.id, trace_id, span_id, error, "mail refused for good; not retried");
                sqlx::query(
                    "UPDATE messages SET status = 'failed', attempts = attempts + 1, last_error = $2 \
                     WHERE id = $1",
                )
                .bind(&m.id)
                .bind(error)
                .execute(db.pool())
                .await?;
            }
            Err(SendError::Moot(why)) => {
                tracing::info!(message_id = %m.id, trace_id, span_id, why, "mail not needed any more; not sent");
                sqlx::query(
                    "UPDATE messages SET status = 'skipped', last_error = $2 WHERE id = $1",
                )
                .bind(&m.id)
                .bind(why)
                .execute(db.pool())
                .await?;
            }
            Err(SendError::Transient(error)) => {
                let attempts = m.attempts + 1;
                let delay = emporium_runtime::backoff(
                    Duration::from_millis(settings.retry_base_ms),
                    Duration::from_millis(settings.retry_max_ms),
                    attempts as u32,
                );
                counter!("emporium_mail_failures_total", "kind" => "transient").increment(1);
                if let Some(span) = &mut span {
                    span.set_error(error.clone());
                }
                tracing::warn!(message_id = %m.id, trace_id, span_id, attempts, error, "mail not delivered; will retry");
                sqlx::query(
                    "UPDATE messages SET attempts = $2, last_error = $3, next_try_ms = $4 WHERE id = $1",
                )
                .bind(&m.id)
                .bind(attempts)
                .bind(error)
                .bind(now_ms() + delay.as_millis() as i64)
                .execute(db.pool())
                .await?;
            }
        }
    }
    Ok(n)
}

/// How long a claimed message is left to its sender before it is due again: longer
/// than a send can take (the SMTP timeout, or the default one for `.eml` files, plus a
/// margin), so a live send is never repeated by another instance.
fn claim_period(settings: &NotificationsSettings) -> Duration {
    const MARGIN: Duration = Duration::from_secs(30);
    const FILES: Duration = Duration::from_secs(10);
    let send = settings
        .smtp
        .as_ref()
        .map_or(FILES, |smtp| Duration::from_millis(smtp.timeout_ms));
    send + MARGIN
}

/// Sends `m`, with its one-time link minted now if it carries one.
async fn deliver(mailer: &Mailer, from: &Mailbox, links: &Links, m: &Due) -> Result<(), SendError> {
    if !links::KINDS.contains(&m.kind.as_str()) {
        return send_one(mailer, from, m).await;
    }
    let url = match links.url(&m.user_id, &m.kind).await {
        Ok(url) => url,
        Err(LinkError::Moot(why)) => return Err(SendError::Moot(why)),
        Err(LinkError::Unavailable(why)) => {
            return Err(SendError::Transient(format!("minting the link: {why}")));
        }
    };
    let filled = Due {
        text_body: m.text_body.replace(links::PLACEHOLDER, &url),
        html_body: m
            .html_body
            .replace(links::PLACEHOLDER, &crate::render::esc(&url)),
        ..m.clone()
    };
    send_one(mailer, from, &filled).await
}

async fn send_one(mailer: &Mailer, from: &Mailbox, m: &Due) -> Result<(), SendError> {
    let address = m
        .email
        .parse()
        .map_err(|e| SendError::Permanent(format!("recipient address: {e}")))?;
    let message = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(Some(m.name.clone()), address))
        .subject(&m.subject)
        .message_id(Some(format!("<{}@emporium>", m.id)))
        .multipart(MultiPart::alternative_plain_html(
            m.text_body.clone(),
            m.html_body.clone(),
        ))
        .map_err(|e| SendError::Permanent(format!("building the message: {e}")))?;
    mailer.send(&m.id, message).await
}
