//! Reading the mail the shop sent: `.eml` files (the embedded default) or a
//! maildir's messages, as a shopper reads their mailbox.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// The token of the one-time link to `page` (`/verify`, `/reset`) in a raw mail,
/// read through its quoted-printable encoding, if it has one.
pub fn link_token(mail: &str, page: &str) -> Option<String> {
    let decoded = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let needle = format!("{page}?token=");
    let start = decoded.find(&needle)? + needle.len();
    let token: String = decoded[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (token.len() == 43).then_some(token)
}

/// Every mail in `dir` (and in its `new/`, for a maildir), oldest first.
pub fn mails(dir: &Path) -> Vec<String> {
    let mut found: Vec<(SystemTime, String)> = [dir.to_path_buf(), dir.join("new")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            Some((modified, std::fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, text)| text).collect()
}

/// Whether `mail`'s `To:` header names `email` (not merely contains it:
/// `ada@example.com` is not `nada@example.com`).
fn addressed_to(mail: &str, email: &str) -> bool {
    let bracketed = format!("<{email}>");
    mail.lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.to_ascii_lowercase().starts_with("to:"))
        .any(|l| l.contains(&bracketed) || l[3..].trim() == email)
}

/// Waits (60 s at most: a shop of containers starting on a busy machine is slow to
/// deliver its first mail) for a mail in `dir` to `email` with a link to `page`, and
/// returns the newest such link's token.
pub async fn mailed_token(dir: &Path, email: &str, page: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(token) = mails(dir)
            .iter()
            .rev()
            .filter(|m| addressed_to(m, email))
            .find_map(|m| link_token(m, page))
        {
            return token;
        }
        assert!(
            Instant::now() < deadline,
            "no mail to {email} with a link to {page} in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_through_quoted_printable() {
        let token = "A".repeat(40) + "b-_";
        let mail = format!(
            "Subject: x\r\n\r\nopen http://localhost:8080/verify?token=3D{}=\r\n{}\r\n",
            &token[..20],
            &token[20..]
        );
        assert_eq!(
            link_token(&mail, "/verify").as_deref(),
            Some(token.as_str())
        );
        assert_eq!(link_token(&mail, "/reset"), None);
        assert_eq!(link_token("/verify?token=short", "/verify"), None);
        let to_ada = "From: shop\r\nTo: \"Ada\" <ada@example.com>\r\n\r\nbody";
        assert!(addressed_to(to_ada, "ada@example.com"));
        assert!(!addressed_to(to_ada, "da@example.com"));
        assert!(!addressed_to(to_ada, "nada@example.com"));
    }
}
