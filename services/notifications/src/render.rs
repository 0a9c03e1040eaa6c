//! The words of each message, as plain text and HTML.

use emporium_contracts::checkout::order_number;
use emporium_contracts::events::{OrderCancelled, OrderConfirmed};

use crate::links::PLACEHOLDER;

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn money(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", minor / 100, (minor % 100).abs())
}

/// Escapes text for HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h1>{}</h1>{body}\
         <p>— Emporium</p></body></html>",
        esc(title)
    )
}

pub fn welcome(name: &str) -> Rendered {
    let subject = "Welcome to Emporium".to_string();
    Rendered {
        text: format!(
            "Hello {name},\n\nyour Emporium account is ready. Happy shopping!\n\n— Emporium\n"
        ),
        html: page(
            &subject,
            &format!(
                "<p>Hello {},</p><p>your Emporium account is ready. Happy shopping!</p>",
                esc(name)
            ),
        ),
        subject,
    }
}

/// Asks `name` to confirm their address; the link goes where
/// [`PLACEHOLDER`] stands.
pub fn verify_email(name: &str) -> Rendered {
    let subject = "Confirm your email address".to_string();
    Rendered {
        text: format!(
            "Hello {name},\n\nplease confirm this is your email address by opening this link \
             (it works once, for a day):\n\n{PLACEHOLDER}\n\nIf you did not create an Emporium \
             account, ignore this mail.\n\n— Emporium\n"
        ),
        html: page(
            &subject,
            &format!(
                "<p>Hello {},</p><p>please confirm this is your email address \
                 (the link works once, for a day):</p><p><a href=\"{PLACEHOLDER}\">Confirm my \
                 address</a></p><p>If you did not create an Emporium account, ignore this \
                 mail.</p>",
                esc(name)
            ),
        ),
        subject,
    }
}

/// A password reset link for `name`, where [`PLACEHOLDER`] stands.
pub fn password_reset(name: &str) -> Rendered {
    let subject = "Reset your password".to_string();
    Rendered {
        text: format!(
            "Hello {name},\n\nsomeone (we hope you) asked to reset your Emporium password. \
             Choose a new one here (the link works once, for an hour):\n\n{PLACEHOLDER}\n\n\
             Resetting signs you out everywhere. If you did not ask, ignore this mail: your \
             password stays as it is.\n\n— Emporium\n"
        ),
        html: page(
            &subject,
            &format!(
                "<p>Hello {},</p><p>someone (we hope you) asked to reset your Emporium \
                 password. Choose a new one here (the link works once, for an hour):</p>\
                 <p><a href=\"{PLACEHOLDER}\">Choose a new password</a></p><p>Resetting signs \
                 you out everywhere. If you did not ask, ignore this mail: your password stays \
                 as it is.</p>",
                esc(name)
            ),
        ),
        subject,
    }
}

pub fn confirmed(e: &OrderConfirmed) -> Rendered {
    let subject = format!("Order {} confirmed", order_number(&e.order_id));
    let mut text = format!("Thank you! Your order {} is confirmed.\n\n", e.order_id);
    let mut rows = String::new();
    for l in &e.lines {
        let line = money(l.unit_price * l.quantity, &e.currency);
        text.push_str(&format!(
            "  {} x {} ({})  {line}\n",
            l.quantity, l.name, l.sku
        ));
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.quantity,
            esc(&l.name),
            esc(&line)
        ));
    }
    let total = money(e.total, &e.currency);
    text.push_str(&format!("\nTotal: {total}\n\n— Emporium\n"));
    Rendered {
        html: page(
            &subject,
            &format!(
                "<p>Thank you! Your order <code>{}</code> is confirmed.</p><table>{rows}</table>\
                 <p><strong>Total: {}</strong></p>",
                esc(&e.order_id),
                esc(&total)
            ),
        ),
        text,
        subject,
    }
}

pub fn cancelled(e: &OrderCancelled) -> Rendered {
    let subject = format!("Order {} cancelled", order_number(&e.order_id));
    let why = match e.reason.as_str() {
        "out_of_stock" => "some items ran out of stock",
        "payment_declined" => "the card was declined",
        "deadline_exceeded" | "interrupted" => "the checkout could not be completed in time",
        _ => "the checkout could not be completed",
    };
    Rendered {
        text: format!(
            "Your order {} was cancelled because {why}. Nothing was charged.\n\n— Emporium\n",
            e.order_id
        ),
        html: page(
            &subject,
            &format!(
                "<p>Your order <code>{}</code> was cancelled because {why}. Nothing was charged.</p>",
                esc(&e.order_id)
            ),
        ),
        subject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_escaping() {
        assert_eq!(money(1999, "USD"), "19.99 USD");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert!(welcome("<b>Eve</b>").html.contains("&lt;b&gt;Eve"));
    }
}
