//! Account rules with no I/O: what a valid email, password and name are.

use std::fmt;

/// A syntactically valid, normalised (trimmed, lowercased) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// Longest address SMTP can carry (RFC 5321 path limit minus the brackets).
const MAX_EMAIL_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

impl Email {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > MAX_EMAIL_LEN {
            return Err("is too long (at most 254 characters)");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("is not an email address");
        };
        if local.is_empty() || local.len() > MAX_LOCAL_LEN || !valid_local(local) {
            return Err("is not an email address");
        }
        if !valid_domain(domain) {
            return Err("does not have a valid domain");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`Email::parse`] accepts, as a JSON Schema: a dot-atom local part of at
/// most 64 characters, a domain of DNS labels and an alphabetic top-level label,
/// at most 254 characters in all.
pub fn email_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
    const ATOM: &str = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
    let shape = format!(
        r"^{ATOM}(?:\.{ATOM})*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}}$"
    );
    AllOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(shape))
                .max_length(Some(MAX_EMAIL_LEN)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[^@]{1,64}@")),
        )
        .examples(["ada@example.com"])
        .build()
        .into()
}

fn valid_local(local: &str) -> bool {
    const SPECIAL: &[u8] = b".!#$%&'*+/=?^_`{|}~-";
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || domain.len() > 253 {
        return false;
    }
    let labels_ok = labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let tld = labels.last().copied().unwrap_or_default();
    labels_ok && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

/// A password that meets the policy (NIST SP 800-63B: length, not a known-common
/// password, not the email; no composition rules).
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Passwords refused outright: the most common ones that meet the length rule.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "0123456789",
    "1111111111",
    "0000000000",
    "password1",
    "password12",
    "password123",
    "password1234",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "1q2w3e4r5t",
    "iloveyou12",
    "abc1234567",
    "letmein123",
    "welcome123",
    "passw0rd12",
    "adminadmin",
    "administrator",
    "abcdefghij",
    "changeme123",
    "football123",
    "monkey1234",
    "dragon1234",
    "sunshine12",
    "princess12",
    "trustno1234",
    "zaq12wsxcde",
    "asdfghjkl1",
];

impl Password {
    pub fn parse(input: &str, email: Option<&Email>) -> Result<Self, String> {
        let chars = input.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        let lower = input.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return Err("is too common; choose another".into());
        }
        if input.chars().all(|c| input.starts_with(c)) {
            return Err("must not repeat one character".into());
        }
        if let Some(email) = email
            && (lower == email.as_str() || lower == email.local_part())
        {
            return Err("must not be your email address".into());
        }
        Ok(Self(input.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A display name: trimmed, 1–100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

pub const MAX_NAME_CHARS: usize = 100;

impl Name {
    pub fn parse(input: &str) -> Result<Self, String> {
        emporium_contracts::fields::line(input, MAX_NAME_CHARS).map(|n| Self(n.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        let e = Email::parse("  Ada.Lovelace+shop@Example.COM ").expect("valid");
        assert_eq!(e.as_str(), "ada.lovelace+shop@example.com");
        assert_eq!(e.local_part(), "ada.lovelace+shop");
    }

    #[test]
    fn invalid_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@b.c",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a@b-.com",
            "a..b@c.com",
            ".a@b.com",
            "a.@b.com",
            "a@b..com",
            "a@b.c0m",
            "a@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        let long = format!("a@{}.com", "b".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn password_policy() {
        let email = Email::parse("grace@example.com").expect("email");
        assert!(Password::parse("correct horse battery", Some(&email)).is_ok());
        assert!(Password::parse("short", None).is_err());
        assert!(Password::parse(&"x".repeat(129), None).is_err());
        assert!(
            Password::parse("Password123", None).is_err(),
            "common, any case"
        );
        assert!(Password::parse("aaaaaaaaaaaa", None).is_err());
        let own = Email::parse("longusername@example.com").expect("email");
        assert!(Password::parse("longusername", Some(&own)).is_err());
        // Length counts characters, not bytes.
        assert!(Password::parse("ééééééééé", None).is_err());
        assert!(Password::parse("ééééééééèè", None).is_ok());
        assert!(
            !format!(
                "{:?}",
                Password::parse("correct horse battery", None).expect("ok")
            )
            .contains("horse")
        );
    }

    #[test]
    fn names() {
        assert_eq!(Name::parse("  Ada  ").expect("ok").as_str(), "Ada");
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"n".repeat(101)).is_err());
        assert!(Name::parse("tab\there").is_err());
    }
}
