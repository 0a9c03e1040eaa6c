//! One-time links in account mails (confirm an address, reset a password).
//!
//! The stored message holds a placeholder where the link goes; just before each
//! send, users mints the link's token (`POST /internal/users/links`, through
//! [`Users::link`]) and the mail
//! goes out with it. So the token is in no event, no stored message and no inbox
//! page: only in the mail, and hashed at users. A retried send asks for a new
//! token, which retires the one before.

use emporium_client::api::Users;
use emporium_client::{ClientError, ServiceClient};
use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL, LinkRequest};
use http::StatusCode;

/// Where a message's link goes, in its text and HTML bodies.
pub const PLACEHOLDER: &str = "{link}";

/// What the inbox shows instead of the link.
pub const IN_THE_MAIL: &str = "(a one-time link, only in the mail we sent)";

/// The message kinds that carry a link: each is the link's purpose at users.
pub const KINDS: [&str; 2] = [LINK_VERIFY_EMAIL, LINK_PASSWORD_RESET];

/// Why no link could be had.
#[derive(Debug)]
pub enum LinkError {
    /// The mail is not needed any more: users says the account is gone (410) or
    /// the address confirmed (409). Any other refusal is retried.
    Moot(String),
    /// users could not be asked; try again later.
    Unavailable(String),
}

/// Mints links through users, pointing at the shop's pages.
#[derive(Clone)]
pub struct Links {
    users: Users,
    shop_url: String,
}

impl Links {
    pub fn new(users: ServiceClient, shop_url: &str) -> Self {
        Self {
            users: Users(users),
            shop_url: shop_url.trim_end_matches('/').to_string(),
        }
    }

    /// The address to put in a mail of `kind` to `user_id`.
    pub async fn url(&self, user_id: &str, kind: &str) -> Result<String, LinkError> {
        let page = if kind == LINK_PASSWORD_RESET {
            "reset"
        } else {
            "verify"
        };
        let request = LinkRequest {
            user_id: user_id.to_string(),
            purpose: kind.to_string(),
        };
        match self.users.link(&request).await {
            Ok(link) => Ok(format!("{}/{page}?token={}", self.shop_url, link.token)),
            Err(
                e @ ClientError::Status {
                    status: StatusCode::GONE | StatusCode::CONFLICT,
                    ..
                },
            ) => Err(LinkError::Moot(
                e.problem_detail()
                    .unwrap_or("the link is not needed any more")
                    .to_string(),
            )),
            Err(e) => Err(LinkError::Unavailable(e.to_string())),
        }
    }
}
