//! Product pictures, generated: a coloured card with the product's initials, so the
//! demo shop has images without shipping or fetching any.

/// An SVG card for a product of `category`. Drawn on a 400-unit canvas but sized
/// 1200 px: browsers scale vectors freely, yet Lighthouse judges an image's
/// resolution by its intrinsic size, and a product page shows it at up to 480 px on
/// screens of two or three device pixels per CSS pixel.
pub fn svg(name: &str, category: &str) -> String {
    let hue = category
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_alphanumeric())
        .take(2)
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="1200" viewBox="0 0 400 400"><rect width="400" height="400" fill="hsl({hue},45%,88%)"/><circle cx="200" cy="180" r="110" fill="hsl({hue},50%,62%)"/><text x="200" y="215" font-family="sans-serif" font-size="96" text-anchor="middle" fill="#fff">{}</text><text x="200" y="360" font-family="sans-serif" font-size="22" text-anchor="middle" fill="hsl({hue},40%,30%)">{}</text></svg>"##,
        escape(&initials),
        escape(&name.chars().take(32).collect::<String>())
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped() {
        let svg = super::svg("Tom & <Jerry>", "toys");
        assert!(svg.contains("Tom &amp; &lt;Jerry&gt;"));
        assert!(!svg.contains("<Jerry>"));
    }
}
